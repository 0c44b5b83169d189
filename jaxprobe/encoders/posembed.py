"""Position-embedding resampling that reproduces PyTorch's ``F.interpolate`` exactly.

``jax.image.resize`` uses the Keys cubic with a = -0.5 and its own edge handling, so it does not match the
reference models. The reference code uses two different torch modes:

* ``torch_bicubic`` — ``mode="bicubic", align_corners=False, antialias=False`` (transformers DINOv2 and
  SigLIP): cubic convolution with a = -0.75, source coordinate ``(dst + 0.5) * in / out - 0.5``, the four
  taps clamped to the border.
* ``torch_bicubic_aa`` — ``mode="bicubic", antialias=True`` (timm's ``resample_abs_pos_embed``, used by
  BiomedCLIP's ViT at a non-native size): the Pillow-style separable filter with a = -0.5, support widened
  by the scale when downsampling, weights normalised per output pixel, taps outside the input dropped.

Both are separable, so each is one ``[out, in]`` matrix per axis, built in float64 with numpy from the
static shapes and applied with two matmuls.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("torch_bicubic", "torch_bicubic_aa")


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def _bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    a = -0.75
    scale = n_in / n_out
    src = (np.arange(n_out) + 0.5) * scale - 0.5
    base = np.floor(src)
    t = src - base
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    for offset in (-1, 0, 1, 2):
        idx = np.clip(base.astype(np.int64) + offset, 0, n_in - 1)
        np.add.at(m, (rows, idx), _cubic(t - offset, a))
    return m


def _bicubic_aa_matrix(n_in: int, n_out: int) -> np.ndarray:
    a = -0.5
    scale = n_in / n_out
    support = 2.0 * scale if scale >= 1.0 else 2.0
    inv_scale = 1.0 / scale if scale >= 1.0 else 1.0
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        w = _cubic((j - center + 0.5) * inv_scale, a)
        total = w.sum()
        m[i, lo:hi] = w / total if total != 0.0 else w
    return m


@functools.lru_cache(maxsize=64)
def resample_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    if mode == "torch_bicubic":
        return _bicubic_matrix(n_in, n_out)
    if mode == "torch_bicubic_aa":
        return _bicubic_aa_matrix(n_in, n_out)
    raise ValueError(f"unknown position-embedding interpolation mode {mode!r}; expected one of {MODES}")


def resample_grid(grid: jax.Array, out_hw: tuple[int, int], mode: str) -> jax.Array:
    """Resample a ``[h, w, C]`` grid of embeddings to ``[H, W, C]`` (computed in float32, like the references)."""
    h, w, _ = grid.shape
    if (h, w) == tuple(out_hw):
        return grid
    mh = jnp.asarray(resample_matrix(h, out_hw[0], mode), jnp.float32)
    mw = jnp.asarray(resample_matrix(w, out_hw[1], mode), jnp.float32)
    g = grid.astype(jnp.float32)
    out = jnp.einsum("Hh,hwc,Ww->HWc", mh, g, mw, precision=jax.lax.Precision.HIGHEST)
    return out.astype(grid.dtype)


def square_side(n_tokens: int, what: str) -> int:
    side = math.isqrt(n_tokens)
    if side * side != n_tokens:
        raise ValueError(f"{what}: {n_tokens} position embeddings do not form a square grid")
    return side
