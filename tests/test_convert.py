"""Converters: full-size parity from files in their original formats, key namings, round trips, clear errors.

Every reference model has every tensor re-randomised (reference_models.randomize_) and is written by its own
library (``save_pretrained``, ``torch.save`` of an open_clip state dict), then converted from those files.
"""
import json

import numpy as np
import pytest

from jaxprobe.errors import CheckpointError
import torch
from safetensors.torch import load_file, save_file

import convert
from convert.__main__ import main as convert_main
from jaxprobe.encoders.conversion import convert_params
from jaxprobe import encoders
from reference_models import (RAD_DINO_PREPROCESSOR, make_biomedclip, make_dinov2, make_siglip)

TOL = 1e-5


def _check_report(report, native, n_images):
    assert report["passed"] is True, report
    assert report["worst_rel"] <= TOL
    sizes = [(c["input_size"], c["native"], c["n_images"]) for c in report["cases"]]
    assert sizes[0] == (native, True, n_images) and sizes[1][1] is False and sizes[1][0] != native
    for c in report["cases"]:
        for part in ("global", "patches"):
            assert c[part]["rel"] <= TOL and c[part]["max_abs"] < 1e-3 * c[part]["max_abs_ref"] + 1e-4
    assert report["versions"]["torch"] == torch.__version__


# ---------------------------------------------------------------- full size, native resolution + interpolation

def test_rad_dino_full_size_parity(tmp_path):
    src = make_dinov2(tmp_path / "rad-dino", full=True, naming="disk", preprocessor=RAD_DINO_PREPROCESSOR)
    with open(src / "model.safetensors", "rb"):
        keys = load_file(str(src / "model.safetensors")).keys()
    assert "encoder.layer.0.attention.attention.query.weight" in keys  # on-disk (legacy) naming
    report = convert.convert("rad_dino", src, tmp_path / "out", n_images=2)
    _check_report(report, 518, 2)
    assert json.loads((tmp_path / "out" / "parity.json").read_text())["passed"] is True
    meta = json.loads((tmp_path / "out" / "encoder.json").read_text())
    assert meta["spec"]["mean"] == [0.5307] * 3 and meta["spec"]["input_size"] == 518
    assert meta["spec"]["resize"] == "shortest_edge_center_crop"
    assert meta["config"]["depth"] == 12 and meta["config"]["layerscale"] is True
    assert len(meta["provenance"]["sha256"]) == 64


def test_chexagent_full_size_parity_from_full_siglip_model(tmp_path):
    src = make_siglip(tmp_path / "XraySigLIP", full=True, with_text=True)
    # one image per size: a second costs ~12 s on 2 cores; batching is checked at reduced size (bare SigLIP below)
    report = convert.convert("chexagent", src, tmp_path / "out", n_images=1)
    _check_report(report, 512, 1)
    enc = encoders.load(tmp_path / "out")
    assert (enc.spec.input_size, enc.spec.grid, enc.spec.global_dim) == (512, 32, 1024)
    assert enc.spec.resize == "direct" and enc.spec.mean == (0.5, 0.5, 0.5)


def test_biomedclip_full_size_parity_from_open_clip_bin(tmp_path):
    src = make_biomedclip(tmp_path / "BiomedCLIP", fmt="bin")
    report = convert.convert("biomedclip", src, tmp_path / "out", n_images=2)
    _check_report(report, 224, 2)
    enc = encoders.load(tmp_path / "out")
    assert enc.spec.global_dim == 512 and enc.spec.patch_dim == 768 and enc.config.proj_dim == 512


# ---------------------------------------------------------------- formats and namings (reduced size)

def _params_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _params_equal(a[k], b[k])
    else:
        np.testing.assert_array_equal(a, b)


def test_dinov2_transformers5_in_memory_names_give_the_same_params(tmp_path):
    disk = make_dinov2(tmp_path / "disk", full=False, naming="disk", seed=3)
    memory = make_dinov2(tmp_path / "memory", full=False, naming="memory", seed=3)
    assert "encoder.layer.0.attention.q_proj.weight" in load_file(str(memory / "model.safetensors"))
    _, p_disk = convert_params("rad_dino", disk)
    _, p_mem = convert_params("rad_dino", memory)
    _params_equal(p_disk, p_mem)
    report = convert.convert("rad_dino", memory, tmp_path / "out", n_images=2)
    assert report["passed"]


def test_bare_siglip_vision_model_with_and_without_prefix(tmp_path):
    bare = make_siglip(tmp_path / "bare", full=False, with_text=False, preprocessor=None, seed=4)
    _, p_bare = convert_params("chexagent", bare)
    # transformers 4.x wrote SiglipVisionModel keys under "vision_model."
    prefixed = tmp_path / "prefixed"
    prefixed.mkdir()
    (prefixed / "config.json").write_text((bare / "config.json").read_text())
    save_file({f"vision_model.{k}": v for k, v in load_file(str(bare / "model.safetensors")).items()},
              str(prefixed / "model.safetensors"))
    _, p_pref = convert_params("chexagent", prefixed)
    _params_equal(p_bare, p_pref)
    report = convert.convert("chexagent", bare, tmp_path / "out", n_images=2)
    assert report["passed"] and (report["cases"][0]["input_size"], report["cases"][0]["n_images"]) == (64, 2)


def test_pytorch_model_bin_and_open_clip_safetensors(tmp_path):
    from transformers import Dinov2Model

    src = make_dinov2(tmp_path / "st", full=False, seed=5)
    binsrc = tmp_path / "bin"
    binsrc.mkdir()
    (binsrc / "config.json").write_text((src / "config.json").read_text())
    model = Dinov2Model.from_pretrained(str(src))
    torch.save(model.state_dict(), binsrc / "pytorch_model.bin")
    _params_equal(convert_params("rad_dino", src)[1], convert_params("rad_dino", binsrc)[1])
    oc = make_biomedclip(tmp_path / "oc", fmt="safetensors", seed=6)
    assert (oc / "open_clip_model.safetensors").is_file()
    assert convert_params("biomedclip", oc)[1]["proj"]["kernel"].shape == (768, 512)


def test_orbax_round_trip_matches_in_memory_params(tmp_path):
    src = make_dinov2(tmp_path / "src", full=False, seed=7)
    source, params = convert_params("rad_dino", src)
    convert.convert("rad_dino", src, tmp_path / "out", parity=False)
    enc = encoders.load(tmp_path / "out")
    from flax import nnx

    restored = nnx.to_pure_dict(nnx.state(enc.module, nnx.Param))
    _params_equal(params, {k: v for k, v in restored.items()})
    x = np.random.default_rng(0).standard_normal((1, 112, 112, 3)).astype(np.float32)
    again = encoders.load(tmp_path / "out")
    np.testing.assert_array_equal(np.asarray(enc.embed(x)[1]), np.asarray(again.embed(x)[1]))


def test_parity_check_fails_against_different_weights(tmp_path, capsys):
    a = make_dinov2(tmp_path / "a", full=False, seed=8)
    b = make_dinov2(tmp_path / "b", full=False, seed=9)
    assert convert_main(["rad_dino", "--src", str(a), "--out", str(tmp_path / "out"), "--n-images", "1"]) == 0
    rc = convert_main(["verify", "--ckpt", str(tmp_path / "out"), "--src", str(b), "--n-images", "1",
                       "--out-file", str(tmp_path / "p.json")])
    assert rc == 1
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["passed"] is False and report["worst_rel"] > 0.1
    assert "parity FAILED" in capsys.readouterr().out


# ---------------------------------------------------------------- clear errors

def _rewrite(src, fn):
    path = src / "model.safetensors"
    save_file(fn(dict(load_file(str(path)))), str(path))


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path, capsys):
    src = make_dinov2(tmp_path / "missing", full=False, seed=10)
    _rewrite(src, lambda sd: {k: v for k, v in sd.items() if k != "encoder.layer.1.mlp.fc2.bias"})
    with pytest.raises(convert.ConversionError, match=r"missing keys: encoder\.layer\.1\.mlp\.fc2\.bias"):
        convert_params("rad_dino", src)

    src = make_dinov2(tmp_path / "unexpected", full=False, seed=10)
    _rewrite(src, lambda sd: {**sd, "encoder.layer.0.extra.weight": torch.zeros(3)})
    with pytest.raises(convert.ConversionError, match=r"unexpected keys: encoder\.layer\.0\.extra\.weight"):
        convert_params("rad_dino", src)

    src = make_dinov2(tmp_path / "shape", full=False, seed=10)
    _rewrite(src, lambda sd: {**sd, "layernorm.weight": torch.zeros(95)})
    with pytest.raises(convert.ConversionError, match=r"wrong shapes: layernorm\.weight \[95\] \(expected \[96\]\)"):
        convert_params("rad_dino", src)
    rc = convert_main(["rad_dino", "--src", str(src), "--out", str(tmp_path / "o")])
    assert rc == 2 and "layernorm.weight [95]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_unsupported_sources_are_refused_with_a_reason(tmp_path):
    src = make_dinov2(tmp_path / "swiglu", full=False)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "use_swiglu_ffn": True}))
    with pytest.raises(convert.ConversionError, match="use_swiglu_ffn"):
        convert_params("rad_dino", src)
    with pytest.raises(convert.ConversionError, match="not a SigLIP model"):
        convert_params("chexagent", tmp_path / "swiglu")
    with pytest.raises(convert.ConversionError, match="open_clip_config.json not found"):
        convert_params("biomedclip", tmp_path / "swiglu")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"model_type": "dinov2"}))
    with pytest.raises(convert.ConversionError, match="no weight file found"):
        convert_params("rad_dino", empty)


def test_converted_folder_cannot_change_architecture(tmp_path):
    src = make_dinov2(tmp_path / "src", full=False)
    convert.convert("rad_dino", src, tmp_path / "out", parity=False)
    with pytest.raises(ValueError, match="cannot be changed for a converted checkpoint"):
        encoders.load(tmp_path / "out", depth=1)
    with pytest.raises(CheckpointError, match="already exists"):
        convert.convert("rad_dino", src, tmp_path / "out", parity=False)
