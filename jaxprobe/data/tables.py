"""CSV tables of the data sets: header names stripped, required columns checked, cells stripped.

Real files disagree on whitespace (SIIM's header is ``ImageId, EncodedPixels``) and some are gzipped
(CheXmask ships ``.csv.gz``); RLE cells of CheXmask exceed the csv module's default field limit.
"""
from __future__ import annotations

import csv
import gzip
import os
import sys
import time
from typing import Iterator, Sequence

from .errors import DataError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _open(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    return open(path, newline="")


def read_rows(path: str | os.PathLike, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with stripped keys and values; raise naming the file if a column is missing."""
    path = os.fspath(path)
    try:
        f = _open(path)
    except OSError as e:
        raise DataError(path, f"cannot open table: {e.strerror or e}") from None
    with f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(path, f"empty table; expected a header with columns {list(required)}") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(path, f"missing column(s) {missing}; the header has {header}")
        for line, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise DataError(f"{path}:{line}", f"{len(cells)} cells; the header has {len(header)} columns")
            yield line, {h: c.strip() for h, c in zip(header, cells)}


class Every:
    """``Every(10.0)()`` is true at most once per 10 seconds (the first call included after 10 s): for progress
    lines in loops over files and rows that can take minutes."""

    def __init__(self, seconds: float):
        self.seconds, self.last = seconds, time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            return True
        return False


def header(path: str | os.PathLike) -> list[str]:
    path = os.fspath(path)
    with _open(path) as f:
        return [h.strip() for h in next(csv.reader(f), [])]
