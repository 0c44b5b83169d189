"""Run-length codecs of the two mask sources.

SIIM-ACR ("relative" RLE of the Kaggle competition): pairs ``start length``; the first start is a 0-based
offset, every later start counts the background pixels since the end of the previous run; pixels are
numbered column by column (Fortran order of the ``[H, W]`` image); ``-1`` means no pneumothorax.

CheXmask: pairs ``start length`` with absolute, 1-based starts; pixels numbered row by row (C order);
an empty string (or a missing cell) is an empty mask.

Masks are ``bool [H, W]``. A malformed string raises ``RLEError`` saying what is wrong; callers add the
file and row.
"""
from __future__ import annotations

import numpy as np


class RLEError(ValueError):
    pass


def _pairs(rle: str) -> tuple[np.ndarray, np.ndarray]:
    tokens = rle.split()
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise RLEError(f"RLE token {bad!r} is not an integer") from None
    if values.size % 2:
        raise RLEError(f"RLE has an odd number of values ({values.size}); expected start/length pairs")
    return values[0::2], values[1::2]


def _paint(starts: np.ndarray, lengths: np.ndarray, size: int) -> np.ndarray:
    """Flat bool mask with pixels [start, start + length) set; starts are absolute 0-based."""
    edges = np.zeros(size + 1, dtype=np.int32)
    np.add.at(edges, starts, 1)
    np.add.at(edges, starts + lengths, -1)
    return np.cumsum(edges[:-1]) > 0


def _runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based starts and lengths of the runs of True in a flat bool array."""
    padded = np.concatenate([[False], flat.astype(bool), [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = changes[0::2], changes[1::2]
    return starts, ends - starts


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def decode_siim(rle: str, height: int = 1024, width: int = 1024) -> np.ndarray:
    """SIIM-ACR relative, column-major RLE -> bool [height, width]; '-1' or blank -> empty mask."""
    text = rle.strip()
    size = height * width
    if text in ("-1", ""):
        return np.zeros((height, width), dtype=bool)
    gaps, lengths = _pairs(text)
    if (gaps < 0).any():
        raise RLEError(f"negative start {int(gaps[gaps < 0][0])}; SIIM starts count background pixels and are >= 0")
    if (lengths <= 0).any():
        raise RLEError(f"run length {int(lengths[lengths <= 0][0])}; lengths must be positive")
    ends = np.cumsum(gaps + lengths)
    starts = ends - lengths
    if ends[-1] > size:
        raise RLEError(f"runs end at pixel {int(ends[-1])}, past the end of a {height}x{width} mask ({size} pixels)")
    flat = _paint(starts, lengths, size)
    return flat.reshape((width, height)).T


def encode_siim(mask: np.ndarray) -> str:
    """bool [H, W] -> SIIM-ACR relative, column-major RLE; '-1' for an empty mask.

    Unlike the competition's own encoder, a run that reaches the last pixel is written too.
    """
    mask = _check_mask(mask)
    starts, lengths = _runs(mask.T.ravel())
    if starts.size == 0:
        return "-1"
    previous_ends = np.concatenate([[0], starts[:-1] + lengths[:-1]])
    gaps = starts - previous_ends
    return " ".join(f"{g} {n}" for g, n in zip(gaps.tolist(), lengths.tolist()))


def decode_chexmask(rle: str | float | None, height: int, width: int) -> np.ndarray:
    """CheXmask absolute, 1-based, row-major RLE -> bool [height, width]; empty/NaN/None -> empty mask."""
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        return np.zeros((height, width), dtype=bool)
    text = str(rle).strip()
    if text == "" or text.lower() == "nan":
        return np.zeros((height, width), dtype=bool)
    size = height * width
    starts, lengths = _pairs(text)
    if (starts < 1).any():
        raise RLEError(f"start {int(starts[starts < 1][0])} < 1; CheXmask starts are 1-based")
    if (lengths <= 0).any():
        raise RLEError(f"run length {int(lengths[lengths <= 0][0])}; lengths must be positive")
    ends = starts - 1 + lengths
    if ends.max() > size:
        raise RLEError(f"a run ends at pixel {int(ends.max())}, past the end of a {height}x{width} mask ({size} pixels)")
    return _paint(starts - 1, lengths, size).reshape(height, width)


def chexmask_columns(rle: str | float | None, height: int, width: int) -> tuple[int, int] | None:
    """(first, last) column a CheXmask RLE mask occupies, from its runs alone (no H x W mask is drawn: about
    100x faster on 1024 x 1024 masks); None for an empty mask. Validates the runs as ``decode_chexmask`` does.
    A row-major run within one row covers its own columns; a run that wraps onto the next row covers from
    column 0 to column W - 1 between them."""
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        return None
    text = str(rle).strip()
    if text == "" or text.lower() == "nan":
        return None
    starts, lengths = _pairs(text)
    if (starts < 1).any():
        raise RLEError(f"start {int(starts[starts < 1][0])} < 1; CheXmask starts are 1-based")
    if (lengths <= 0).any():
        raise RLEError(f"run length {int(lengths[lengths <= 0][0])}; lengths must be positive")
    first, last = starts - 1, starts - 2 + lengths
    if last.max() > height * width - 1:
        raise RLEError(f"a run ends at pixel {int(last.max()) + 1}, past the end of a {height}x{width} mask "
                       f"({height * width} pixels)")
    same_row = first // width == last // width
    low = np.where(same_row, first % width, 0)
    high = np.where(same_row, last % width, width - 1)
    return int(low.min()), int(high.max())


def encode_chexmask(mask: np.ndarray) -> str:
    """bool [H, W] -> CheXmask absolute, 1-based, row-major RLE; '' for an empty mask."""
    mask = _check_mask(mask)
    starts, lengths = _runs(mask.ravel())
    return " ".join(f"{s + 1} {n}" for s, n in zip(starts.tolist(), lengths.tolist()))
