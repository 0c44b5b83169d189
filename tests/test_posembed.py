"""Position-embedding resampling against torch's own F.interpolate (the reference models call exactly this)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaxprobe.encoders.posembed import resample_grid, resample_matrix


@pytest.mark.parametrize("mode,antialias", [("torch_bicubic", False), ("torch_bicubic_aa", True)])
@pytest.mark.parametrize("src,dst", [((37, 37), (16, 16)), ((16, 16), (37, 37)), ((24, 24), (32, 32)),
                                     ((14, 14), (18, 18)), ((14, 14), (9, 9)), ((12, 12), (7, 20))])
def test_matches_torch_interpolate(mode, antialias, src, dst):
    rng = np.random.default_rng(sum(src) + sum(dst))
    grid = rng.standard_normal((*src, 6)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(grid).permute(2, 0, 1)[None], size=dst, mode="bicubic",
                        align_corners=False, antialias=antialias)[0].permute(1, 2, 0).numpy()
    out = np.asarray(resample_grid(grid, dst, mode))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5 * np.abs(ref).max())


def test_same_size_is_identity_and_modes_differ():
    grid = np.random.default_rng(0).standard_normal((9, 9, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(resample_grid(grid, (9, 9), "torch_bicubic")), grid)
    # a = -0.75 (plain) vs a = -0.5 (antialiased) give different weights even when upsampling
    assert not np.allclose(resample_matrix(9, 13, "torch_bicubic"), resample_matrix(9, 13, "torch_bicubic_aa"))


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown position-embedding interpolation mode"):
        resample_matrix(4, 5, "bilinear")
