"""Extraction from data records into a store keyed by the encoder, its spec, the record ids and the reading options."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


from ..data.loaders import record_loader, record_targets
from ..data.records import Record
from .extract import extract
from .store import Store


def extract_records(encoder, records: Sequence[Record], root: str | Path, *, name: str, mask: str | None = None,
                    read_kwargs: dict | None = None, **kwargs) -> Store:
    """Embed ``records`` into a store keyed by the encoder, its spec, the record ids and the reading options."""
    ids = [f"{r.source}:{r.image_id}" for r in records]
    extra = {"read_kwargs": read_kwargs or {}, "paths": [r.path for r in records]}
    return extract(encoder, ids, record_loader(records, encoder.spec, mask, read_kwargs), root, name=name,
                   mask_size=encoder.spec.input_size if mask else None, mask_settings={"target": mask},
                   targets=record_targets(records), extra=extra, **kwargs)
