"""Extraction from a prepared (TFDS) dataset: random-access reads of decoded images, preprocessed per encoder.

The prepared dataset stores each image already decoded to 8 bits, so a load is a zlib inflate plus the
encoder's resize and normalisation (``jaxprobe.data.preprocess``), the same arithmetic ``record_loader``
applies after decoding the original file: both give the same pixels and so the same embeddings.
``extract``'s thread pool calls the loader concurrently; ArrayRecord data sources are safe to share
between threads, and zlib and Pillow release the GIL for the heavy parts.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data import preprocess, preprocess_mask
from ..data.tfds.index import IndexRow, Task, example_index, select
from ..data.tfds.base import INDEX_FILE
from .extract import extract
from .store import Store


def prepared_loader(source, spec, mask: str | None = None, indices: Sequence[int] | None = None):
    """row -> {"pixels": float32 [S,S,3], "mask": bool [S,S]}; row r reads ``source[indices[r]]``.

    ``source`` is one split's data source (``builder.as_data_source(split)`` or ``tfds.data_source(...)``);
    ``mask`` names one of its masks ("pneumothorax", "heart", ...); ``indices`` selects a task's examples.
    """
    positions = list(range(len(source))) if indices is None else [int(i) for i in indices]

    def load(row: int) -> dict:
        example = source[positions[row]]
        out = {"pixels": preprocess(example["image"], spec)}
        if mask is not None:
            masks = example["masks"]
            if mask not in masks:
                raise KeyError(f"mask {mask!r} not in this dataset; it has {sorted(masks)}")
            out["mask"] = preprocess_mask(masks[mask], spec)
        return out

    return load


def prepared_targets(rows: Sequence[IndexRow]) -> dict[str, np.ndarray]:
    return {"label": np.array([r.label for r in rows], np.int8),
            "ctr": np.array([np.nan if r.ctr is None else r.ctr for r in rows], np.float32)}


def extract_prepared(encoder, builder, split: str, root: str | Path, *, name: str, task: Task = "all",
                     seed: int = 0, mask: str | None = None, **kwargs) -> Store:
    """Embed one split of a prepared dataset (the examples ``task`` selects) into a store under ``root``.

    ``builder`` is what ``jaxprobe.data.tfds.prepare(...)`` returns (it prepares the dataset on first use and
    reuses it afterwards). Row ids are ``"<source>:<image_id>"`` as ``extract_records`` writes them; the store
    key also covers the dataset, split, task and the example index's contents, so another preparation (other
    splits, other files) never reuses these embeddings. ``kwargs`` go to ``extract`` (batch_size, workers, ...).
    With ``jax.distributed``, prepare before the processes start (``python -m jaxprobe.data.prepare``): two
    processes building the same dataset at once would race for its folder.
    """
    rows = example_index(builder)[split]
    chosen = select(rows, task, seed=seed)
    picked = [rows[i] for i in chosen]
    source_name = builder.info.metadata["source"]
    ids = [f"{source_name}:{r.image_id}" for r in picked]
    index_digest = hashlib.sha256((Path(builder.data_path) / INDEX_FILE).read_bytes()).hexdigest()
    extra = {"mask": mask, "dataset": f"{builder.name}/{builder.builder_config.name}:{builder.version}",
             "split": split, "task": task, "seed": seed if task == "classification" else None,
             "index_sha256": index_digest}
    loader = prepared_loader(builder.as_data_source(split), encoder.spec, mask, chosen)
    return extract(encoder, ids, loader, root, name=name, mask_size=encoder.spec.input_size if mask else None,
                   targets=prepared_targets(picked), extra=extra, **kwargs)
