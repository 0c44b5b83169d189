"""The synthetic phantom set: deterministic per seed, chest-like, readable by the real loaders."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxprobe.data.ctr import ctr
from jaxprobe.data.synth import chest_phantom, make_synthetic


def digest(root):
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    first = digest(make_synthetic(tmp_path / "a", n=6, seed=11, size=64).root)
    again = digest(make_synthetic(tmp_path / "b", n=6, seed=11, size=64).root)
    other = digest(make_synthetic(tmp_path / "c", n=6, seed=12, size=64).root)
    assert first == again and len(first) == 6 + 1 + 6 + 2  # DICOMs, RLE CSV, PNGs, manifest, CheXmask CSV
    assert set(first.values()).isdisjoint(other.values())


def test_phantom_anatomy():
    rng = np.random.default_rng(0)
    for target in (0.35, 0.5, 0.65):
        p = chest_phantom(rng, 200, 180, target_ctr=target, pneumothorax=True)
        assert abs(ctr(p.heart, p.left_lung, p.right_lung) - target) < 0.02
        assert not (p.heart & (p.left_lung | p.right_lung)).any()
        assert p.right_lung[:, :90].sum() > 0.9 * p.right_lung.sum()  # patient's right on the viewer's left
        lungs = p.left_lung | p.right_lung
        assert p.pneumothorax.any() and not (p.pneumothorax & ~lungs).any()
        aerated = lungs & ~p.pneumothorax
        assert p.image[p.pneumothorax].mean() < p.image[aerated].mean() - 0.05  # lucent
        assert p.image[p.heart].mean() > p.image[aerated].mean() + 0.2
    clean = chest_phantom(np.random.default_rng(1), 200, 180, target_ctr=0.5, pneumothorax=False)
    assert not clean.pneumothorax.any()


def test_pneumothorax_has_no_lung_texture_and_a_pleural_line():
    p = chest_phantom(np.random.default_rng(2), 256, 256, target_ctr=0.5, pneumothorax=True, noise=0.0,
                      rib_contrast=0.0)
    lungs = p.left_lung | p.right_lung
    aerated = lungs & ~p.pneumothorax
    assert p.image[p.pneumothorax].std() < 0.5 * p.image[aerated].std()
    # pleural line: the aerated pixels touching the pneumothorax are brighter than the aerated lung overall
    border = np.zeros_like(lungs)
    for axis in (0, 1):
        for shift in (-1, 1):
            border |= np.roll(p.pneumothorax, shift, axis=axis)
    border &= aerated
    assert p.image[border].mean() > p.image[aerated].mean() + 0.03


def test_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jaxprobe.data.synth", "--out", str(tmp_path), "--n", "4",
                          "--seed", "5", "--size", "64"], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert "siim_root" in out.stdout and os.path.isfile(tmp_path / "siim" / "train-rle.csv")
    with pytest.raises(ValueError, match="n must be"):
        make_synthetic(tmp_path / "x", n=1)
