"""Extraction from data records: read + preprocess each image (and its mask) with the encoder's own spec."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..data import preprocess, preprocess_mask, read_image
from ..data.records import Record
from .extract import extract
from .store import Store


def record_loader(records: Sequence[Record], spec, mask: str | None = None, read_kwargs: dict | None = None):
    """row -> {"pixels": float32 [S,S,3], "mask": bool [S,S]} (the mask on the same grid as the pixels)."""
    read_kwargs = read_kwargs or {}

    def load(i: int) -> dict:
        r = records[i]
        out = {"pixels": preprocess(read_image(r.path, **read_kwargs), spec)}
        if mask is not None:
            out["mask"] = preprocess_mask(r.mask(mask), spec)  # a SIIM negative decodes to an empty mask
        return out

    return load


def record_targets(records: Sequence[Record]) -> dict[str, np.ndarray]:
    return {"label": np.array([r.label for r in records], np.int8),
            "ctr": np.array([np.nan if r.ctr is None else r.ctr for r in records], np.float32)}


def extract_records(encoder, records: Sequence[Record], root: str | Path, *, name: str, mask: str | None = None,
                    read_kwargs: dict | None = None, **kwargs) -> Store:
    """Embed ``records`` into a store keyed by the encoder, its spec, the record ids and the reading options."""
    ids = [f"{r.source}:{r.image_id}" for r in records]
    extra = {"mask": mask, "read_kwargs": read_kwargs or {}, "paths": [r.path for r in records]}
    return extract(encoder, ids, record_loader(records, encoder.spec, mask, read_kwargs), root, name=name,
                   mask_size=encoder.spec.input_size if mask else None, targets=record_targets(records),
                   extra=extra, **kwargs)
