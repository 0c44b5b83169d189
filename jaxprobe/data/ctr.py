"""Cardiothoracic ratio from segmentation masks (the study's Equation 1).

CTR = horizontal extent of the heart mask / horizontal extent of (heart ∪ left lung ∪ right lung).

The horizontal extent of a mask is the width of its projection on the x-axis, measured from the first to
the last occupied column inclusive (``last - first + 1``), not the count of occupied columns: the two differ
only when the union's projection has a gap, and the extent is what a reader measures with calipers. Because
the denominator includes the heart, CTR is at most 1. It is unchanged by any isotropic resize (up to
one-pixel rounding), so it can be computed on original or preprocessed masks.
"""
from __future__ import annotations

import numpy as np


def horizontal_extent(mask: np.ndarray) -> int:
    """Columns from the first to the last one the mask occupies, inclusive; 0 for an empty mask."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {mask.shape}")
    columns = np.flatnonzero(mask.astype(bool).any(axis=0))
    return int(columns[-1] - columns[0] + 1) if columns.size else 0


def ctr(heart: np.ndarray, left_lung: np.ndarray, right_lung: np.ndarray) -> float:
    """Cardiothoracic ratio of one image from bool [H, W] heart and lung masks (same shape)."""
    heart, left_lung, right_lung = (np.asarray(m).astype(bool) for m in (heart, left_lung, right_lung))
    if not heart.shape == left_lung.shape == right_lung.shape:
        raise ValueError(
            f"heart {heart.shape}, left lung {left_lung.shape} and right lung {right_lung.shape} differ in shape"
        )
    heart_width = horizontal_extent(heart)
    if heart_width == 0:
        raise ValueError("heart mask is empty; CTR is undefined")
    return heart_width / horizontal_extent(heart | left_lung | right_lung)


def ctr_from_columns(heart: tuple[int, int], left_lung: tuple[int, int] | None,
                     right_lung: tuple[int, int] | None) -> float:
    """Equation 1 from each structure's (first, last) occupied column (None: empty): the same number as ``ctr``
    on the masks, since a horizontal extent runs from the first to the last occupied column."""
    if heart is None:
        raise ValueError("heart mask is empty; CTR is undefined")
    spans = [s for s in (heart, left_lung, right_lung) if s is not None]
    return (heart[1] - heart[0] + 1) / (max(s[1] for s in spans) - min(s[0] for s in spans) + 1)
