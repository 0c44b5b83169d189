"""The example index of a prepared dataset (``examples.csv``) and the task selections made from it.

Tasks select within each split without reading images: segmentation trains on the positives, classification
on a balanced sample (every positive and as many negatives drawn with a seed, the rule of
``jaxprobe.data.classification_set``), regression on everything.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal, Sequence


from ..errors import DataError
from ..splits import SPLITS, balanced
from ..tables import read_rows
from .base import INDEX_FILE

Task = Literal["all", "segmentation", "classification"]
TASKS = ("all", "segmentation", "classification")


@dataclasses.dataclass(frozen=True)
class IndexRow:
    split: str
    index: int  # position in the split's data source
    image_id: str
    patient_id: str
    label: int
    ctr: float | None
    source_path: str


def dataset_dir(builder_or_dir) -> Path:
    return Path(os.fspath(getattr(builder_or_dir, "data_path", builder_or_dir)))


def example_index(builder_or_dir) -> dict[str, list[IndexRow]]:
    """split -> its rows in data-source order, from a builder (prepared) or its dataset folder."""
    path = dataset_dir(builder_or_dir) / INDEX_FILE
    if not path.is_file():
        raise DataError(os.fspath(path), "no example index; is this a dataset prepared by jaxprobe.data.tfds?")
    out: dict[str, list[IndexRow]] = {s: [] for s in SPLITS}
    for line, row in read_rows(path, ["split", "index", "image_id", "patient_id", "label", "ctr", "source_path"]):
        split = row["split"]
        if split not in out or int(row["index"]) != len(out[split]):
            raise DataError(f"{path}:{line}", f"split {split!r} index {row['index']}; expected {SPLITS} numbered "
                                              "0, 1, ... in order")
        out[split].append(IndexRow(split, int(row["index"]), row["image_id"], row["patient_id"], int(row["label"]),
                                   float(row["ctr"]) if row["ctr"] else None, row["source_path"]))
    return out


def select(rows: Sequence[IndexRow], task: Task = "all", *, seed: int = 0) -> list[int]:
    """Data-source indices of ``rows`` (one split) that ``task`` uses, in index order."""
    if task == "all":
        return [r.index for r in rows]
    positives = [r.index for r in rows if r.label == 1]
    if task == "segmentation":
        return positives
    if task != "classification":
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    # rows are in image-id order, as the records classification_set draws from, so both draw the same negatives
    return sorted(rows[i].index for i in balanced([r.label for r in rows], seed))
