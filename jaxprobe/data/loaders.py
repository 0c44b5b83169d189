"""Per-row loaders of an analysis's images: read (a file, or a prepared dataset's decoded example), preprocess
with the encoder's own spec, and give the mask on the same grid; plus the per-row targets stored beside them.

A prepared dataset stores each image already decoded to 8 bits, so its load is the same resize and
normalisation (``preprocess``) that ``record_loader`` applies after decoding the original file: both give the
same pixels and so the same embeddings. Extraction calls the loaders from a thread pool; ArrayRecord data
sources are safe to share between threads, and zlib and Pillow release the GIL for the heavy parts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .images import read_image
from .records import Record
from .transforms import preprocess, preprocess_mask

if TYPE_CHECKING:  # the tfds package imports tensorflow-datasets, an optional dependency
    from .tfds.index import IndexRow


def record_loader(records: Sequence[Record], spec, mask: str | None = None, read_kwargs: dict | None = None,
                  mask_options: dict | None = None):
    """row -> {"pixels": float32 [S,S,3], "mask": bool [S,S]} (the mask on the same grid as the pixels).

    ``read_kwargs`` go to ``read_image`` (e.g. ``scaling="minmax"``), ``mask_options`` to ``preprocess_mask``
    (``resample``, ``threshold``)."""
    read_kwargs, mask_options = read_kwargs or {}, mask_options or {}

    def load(i: int) -> dict:
        r = records[i]
        out = {"pixels": preprocess(read_image(r.path, **read_kwargs), spec)}
        if mask is not None:
            out["mask"] = preprocess_mask(r.mask(mask), spec, **mask_options)  # a SIIM negative: an empty mask
        return out

    return load


def record_targets(records: Sequence[Record]) -> dict[str, np.ndarray]:
    """Per-record scalars stored beside the embeddings: the label, the CTR and (user cohorts) the value."""
    targets = {"label": np.array([r.label for r in records], np.int8),
               "ctr": np.array([np.nan if r.ctr is None else r.ctr for r in records], np.float32)}
    if any(r.value is not None for r in records):
        targets["value"] = np.array([np.nan if r.value is None else r.value for r in records], np.float32)
    return targets


def prepared_loader(source, spec, mask: str | None = None, indices: Sequence[int] | None = None,
                    mask_options: dict | None = None):
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
            out["mask"] = preprocess_mask(masks[mask], spec, **(mask_options or {}))
        return out

    return load


def prepared_targets(rows: Sequence[IndexRow]) -> dict[str, np.ndarray]:
    return {"label": np.array([r.label for r in rows], np.int8),
            "ctr": np.array([np.nan if r.ctr is None else r.ctr for r in rows], np.float32)}
