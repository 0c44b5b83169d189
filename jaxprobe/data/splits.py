"""Patient-level train/val/test splits (72/8/20 by default), seeded and written next to the results.

Patients, not images, are shuffled with ``numpy.random.default_rng(seed)`` and cut by the fractions, so no
patient has images in two splits; with several images per patient the image fractions drift a little from
the patient fractions (as with scikit-learn's ``GroupShuffleSplit``, whose sizes also count groups). Patient
counts per split are rounded by largest remainder so they sum to the total. A user split file (a CSV with an
image-id column and a split column) replaces the seeded split.
"""
from __future__ import annotations

import csv
import logging
import os
from typing import Mapping, Sequence

import numpy as np

from .errors import DataError
from .records import Record
from .tables import read_rows

log = logging.getLogger("jaxprobe.data")

SPLITS = ("train", "val", "test")
_SPELLINGS = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "validate": "val", "dev": "val", "tune": "val",
    "test": "test", "testing": "test", "tst": "test", "holdout": "test",
}


def _counts(total: int, fractions: Sequence[float]) -> list[int]:
    exact = np.asarray(fractions, dtype=np.float64) * total
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def patient_splits(
    records: Sequence[Record], *, fractions: Sequence[float] = (0.72, 0.08, 0.20), seed: int = 0
) -> dict[str, str]:
    """image_id -> "train" | "val" | "test", cutting a seeded permutation of the patients by ``fractions``."""
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers (train, val, test) summing to 1, got {fractions}")
    patients = sorted({r.patient_id for r in records})
    order = np.random.default_rng(seed).permutation(len(patients))
    split_of_patient = {}
    start = 0
    for split, count in zip(SPLITS, _counts(len(patients), fractions)):
        for i in order[start : start + count]:
            split_of_patient[patients[i]] = split
        start += count
    return {r.image_id: split_of_patient[r.patient_id] for r in records}


def leaking_patients(records: Sequence[Record], assignment: Mapping[str, str]) -> dict[str, set[str]]:
    """Patients whose images fall in more than one split, with the splits they span."""
    spans: dict[str, set[str]] = {}
    for r in records:
        spans.setdefault(r.patient_id, set()).add(assignment[r.image_id])
    return {p: s for p, s in spans.items() if len(s) > 1}


def normalise_split_name(name: str, where: str) -> str:
    key = name.strip().lower()
    if key not in _SPELLINGS:
        raise DataError(where, f"split {name!r}; expected train, val or test (or a spelling such as Validation)")
    return _SPELLINGS[key]


def read_split_file(
    path: str | os.PathLike, *, image_id_column: str = "image_id", split_column: str = "split"
) -> dict[str, str]:
    """A user's split CSV -> image_id -> "train" | "val" | "test"."""
    path = os.fspath(path)
    out: dict[str, str] = {}
    for line, row in read_rows(path, [image_id_column, split_column]):
        where = f"{path}:{line}"
        image_id = row[image_id_column]
        split = normalise_split_name(row[split_column], where)
        if image_id in out and out[image_id] != split:
            raise DataError(where, f"image {image_id} is in both {out[image_id]} and {split}")
        out[image_id] = split
    return out


def balanced(labels: Sequence[int], seed: int = 0) -> list[int]:
    """Positions of a 1:1 cohort drawn from cases in a fixed order (image-id order everywhere): every case of
    the smaller class and as many cases of the larger one drawn with ``seed``, in the given order.

    The one balancing rule of jaxprobe: the SIIM-ACR classification set, the cardiomegaly cohort (the paper's
    30,000 PA radiographs, balanced 50/50) and the prepared-dataset selections all draw through it, so the same
    cases and seed give the same cohort whichever way the images are read."""
    labels = np.asarray(labels)
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise DataError("balance", f"labels must be 0 or 1 to balance a cohort, got {sorted(set(labels.tolist()))[:5]}")
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    minority, majority = (positives, negatives) if len(positives) <= len(negatives) else (negatives, positives)
    if not len(minority):
        raise DataError("balance", f"cannot balance a cohort with {len(positives)} positives and {len(negatives)} "
                                   "negatives")
    chosen = np.random.default_rng(seed).choice(len(majority), size=len(minority), replace=False)
    return sorted(minority.tolist() + majority[chosen].tolist())


def resolve_splits(
    records: Sequence[Record],
    *,
    split_file: str | os.PathLike | None = None,
    image_id_column: str = "image_id",
    split_column: str = "split",
    fractions: Sequence[float] = (0.72, 0.08, 0.20),
    seed: int = 0,
) -> dict[str, str]:
    """The user's split file when given (every record must be in it), else the seeded patient-level split."""
    if split_file is None:
        return patient_splits(records, fractions=fractions, seed=seed)
    given = read_split_file(split_file, image_id_column=image_id_column, split_column=split_column)
    missing = [r.image_id for r in records if r.image_id not in given]
    if missing:
        raise DataError(os.fspath(split_file), f"{len(missing)} image(s) have no split, e.g. {missing[:3]}")
    assignment = {r.image_id: given[r.image_id] for r in records}
    leaks = leaking_patients(records, assignment)
    if leaks:
        log.warning("%s: %d patient(s) have images in several splits, e.g. %s", split_file, len(leaks),
                    sorted(leaks)[:3])
    return assignment


def write_splits(path: str | os.PathLike, records: Sequence[Record], assignment: Mapping[str, str]) -> None:
    """CSV image_id, patient_id, split (readable back by ``read_split_file``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "patient_id", "split"])
        for r in sorted(records, key=lambda r: r.image_id):
            writer.writerow([r.image_id, r.patient_id, assignment[r.image_id]])


def split_records(records: Sequence[Record], assignment: Mapping[str, str]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for r in records:
        out[assignment[r.image_id]].append(r)
    return out
