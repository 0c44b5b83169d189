"""The encoder families beyond the study's three: DINOv2 with registers, DINOv3 (rotary positions), transformers'
CLIP, open_clip's native ViT and SigLIP at MedSigLIP's layout. Each is converted from files its own library wrote
(re-randomised weights) through the family-named command, and checked against that library at the native size
and at a non-native size (the parity report's two cases), at float32 relative error <= 1e-5."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convert
from convert.__main__ import main as convert_main
from jaxprobe import encoders
from jaxprobe.encoders.conversion import convert_params
from reference_models import (CLIP_PREPROCESSOR, make_biomedclip, make_clip, make_dinov2, make_dinov3,
                              make_open_clip, make_siglip)

TOL = 1e-5


def _passed(report, native):
    assert report["passed"] is True and report["worst_rel"] <= TOL, report
    (first, second) = report["cases"]
    assert first["input_size"] == native and first["native"] and not second["native"]
    for case in report["cases"]:
        for part in ("global", "patches"):
            assert case[part]["rel"] <= TOL
    return report


# ------------------------------------------------------------------------------------- full size, two sizes

@pytest.mark.slow
def test_dinov2_with_registers_full_size(tmp_path):
    src = make_dinov2(tmp_path / "src", full=True, registers=4)
    assert json.loads((src / "config.json").read_text())["model_type"] == "dinov2_with_registers"
    report = _passed(convert.convert("dinov2", src, tmp_path / "out", n_images=1), 518)
    enc = encoders.load(tmp_path / "out")
    assert enc.config.registers == 4 and enc.config.pos_interp == "torch_bicubic_aa"
    assert report["cases"][0]["patches_shape"] == [1, 37, 37, 768]  # the 4 registers are not patches


@pytest.mark.slow
def test_dinov3_full_size(tmp_path):
    src = make_dinov3(tmp_path / "src", full=True)
    report = _passed(convert.convert("dinov3", src, tmp_path / "out", n_images=2), 224)
    assert report["cases"][0]["patches_shape"] == [2, 14, 14, 768]
    enc = encoders.load(tmp_path / "out")
    assert enc.config.rope_theta == 100.0 and enc.config.registers == 4
    assert enc.spec.resize == "direct" and enc.spec.resample == "bilinear"  # DINOv3ViTImageProcessor's defaults


@pytest.mark.slow
def test_transformers_clip_full_size(tmp_path):
    src = make_clip(tmp_path / "src", full=True, kind="model")
    report = _passed(convert.convert("clip", src, tmp_path / "out", n_images=2), 224)
    assert report["cases"][0]["global_shape"] == [2, 512]  # get_image_features: the projected embedding
    enc = encoders.load(tmp_path / "out")
    assert enc.config.quick_gelu and enc.config.pre_norm and not enc.config.norm_patches
    assert enc.spec.resize == "shortest_edge_center_crop" and enc.spec.mean == tuple(CLIP_PREPROCESSOR["image_mean"])


@pytest.mark.slow
def test_open_clip_native_full_size(tmp_path):
    src = make_open_clip(tmp_path / "src", full=True, quick_gelu=True)
    report = _passed(convert.convert("open_clip", src, tmp_path / "out", n_images=2), 224)
    assert report["cases"][0]["global_shape"] == [2, 512] and report["cases"][0]["patches_shape"] == [2, 7, 7, 768]
    assert encoders.load(tmp_path / "out").config.family == "open_clip"


@pytest.mark.slow
def test_medsiglip_layout(tmp_path):
    """MedSigLIP-448 is a whole SiglipModel of SigLIP so400m/14 at 448 (width 1152, MLP 4304, 16 heads); at that
    width and resolution (two of its 27 blocks, to keep the test short) it converts with the family command and
    its preprocessing file (448 x 448, bicubic, mean/std 0.5) is read."""
    from reference_models import SIGLIP_PREPROCESSOR

    pre = {**SIGLIP_PREPROCESSOR, "size": {"height": 448, "width": 448}}
    src = make_siglip(tmp_path / "src", full=True, with_text=True, preprocessor=pre,
                      vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=2,
                                  num_attention_heads=16, image_size=448, patch_size=14))
    report = _passed(convert.convert("siglip", src, tmp_path / "out", n_images=1), 448)
    assert report["cases"][0]["patches_shape"] == [1, 32, 32, 1152]
    entry = encoders.registry.get("medsiglip")
    enc = encoders.load(tmp_path / "out")
    assert (enc.spec.input_size, enc.spec.patch_size, enc.spec.mean, enc.spec.resize) == (
        entry.spec.input_size, entry.spec.patch_size, entry.spec.mean, entry.spec.resize)
    assert (enc.config.width, enc.config.mlp_dim, enc.config.num_heads) == (
        entry.config.width, entry.config.mlp_dim, entry.config.num_heads)


@pytest.mark.slow
@pytest.mark.parametrize("layout", [
    dict(patch_size=32, hidden_size=768, intermediate_size=3072, num_attention_heads=12),   # OpenAI ViT-B/32
    dict(patch_size=14, hidden_size=1024, intermediate_size=4096, num_attention_heads=16),  # OpenAI ViT-L/14
])
def test_openai_clip_layouts(tmp_path, layout):
    """OpenAI's other CLIP layouts at their full width, patch size and resolution (two blocks each, to keep it
    short; depth is only a count): QuickGELU, pre-norm, projection to 512 / 768."""
    proj = 768 if layout["hidden_size"] == 1024 else 512
    src = make_clip(tmp_path / "src", full=True, projection_dim=proj, num_hidden_layers=2, **layout)
    report = _passed(convert.convert("clip", src, tmp_path / "out", n_images=1), 224)
    g = 224 // layout["patch_size"]
    assert report["cases"][0]["patches_shape"] == [1, g, g, layout["hidden_size"]]
    assert report["cases"][0]["global_shape"] == [1, proj]


# ------------------------------------------------------------------------------------- layouts and namings

def _same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    else:
        np.testing.assert_array_equal(a, b)


def test_dinov3_disk_and_memory_names_give_the_same_params(tmp_path):
    disk = make_dinov3(tmp_path / "disk", full=False, seed=3)
    memory = make_dinov3(tmp_path / "memory", full=False, seed=3, naming="memory")
    _same(convert_params("dinov3", disk)[1], convert_params("dinov3", memory)[1])
    # the key projection has no bias (config key_bias=false): a zero bias computes the same
    params = convert_params("dinov3", disk)[1]
    assert not params["encoder"]["blocks"][0]["attn"]["k"]["bias"].any()


def test_dinov3_with_every_bias_and_no_registers(tmp_path):
    src = make_dinov3(tmp_path / "src", full=False, key_bias=True, mlp_bias=False, num_register_tokens=0, seed=4)
    _passed(convert.convert("dinov3", src, tmp_path / "out", n_images=1), 64)
    params = convert_params("dinov3", src)[1]
    assert params["encoder"]["blocks"][0]["attn"]["k"]["bias"].any()
    assert not params["encoder"]["blocks"][0]["mlp"]["fc1"]["bias"].any()


@pytest.mark.parametrize("kind", ["vision", "vision_proj"])
def test_clip_vision_model_folders(tmp_path, kind):
    src = make_clip(tmp_path / "src", full=False, kind=kind, projection_dim=40, preprocessor=None, seed=5,
                    hidden_act="gelu")
    report = _passed(convert.convert("clip", src, tmp_path / "out", n_images=1), 64)
    assert report["cases"][0]["global_shape"] == [1, 40 if kind == "vision_proj" else 64]


def test_open_clip_command_reads_native_and_timm_towers(tmp_path):
    native = make_open_clip(tmp_path / "native", full=False, quick_gelu=False, fmt="safetensors", seed=6,
                            vision_cfg=dict(image_size=64, layers=2, width=64, head_width=32, patch_size=16,
                                            ls_init_value=0.1))
    _passed(convert.convert("open_clip", native, tmp_path / "o1", n_images=1), 64)
    assert encoders.load(tmp_path / "o1").config.layerscale
    timm = make_biomedclip(tmp_path / "timm", seed=7)
    source, _ = convert_params("open_clip", timm)
    assert source.config.family == "timm_vit"
    # the study's entries stay what they are: a native tower is not BiomedCLIP
    with pytest.raises(convert.ConversionError, match="open_clip native tower"):
        convert_params("biomedclip", native)


def test_dinov2_command_reads_plain_and_registers_folders(tmp_path):
    plain = make_dinov2(tmp_path / "plain", full=False, seed=8)
    regs = make_dinov2(tmp_path / "regs", full=False, seed=8, registers=2)
    assert convert_params("dinov2", plain)[0].config.registers == 0
    assert convert_params("dinov2", regs)[0].config.registers == 2
    _passed(convert.convert("dinov2", regs, tmp_path / "out", n_images=1), 112)
    # a DINOv3 folder given to a DINOv2 entry is refused by its model type
    with pytest.raises(convert.ConversionError, match="not a DINOv2 model"):
        convert_params("rad_dino", make_dinov3(tmp_path / "d3", full=False))


def test_unsupported_options_are_refused_with_a_reason(tmp_path):
    src = make_dinov3(tmp_path / "gated", full=False)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "use_gated_mlp": True}))
    with pytest.raises(convert.ConversionError, match="use_gated_mlp"):
        convert_params("dinov3", src)
    oc = make_open_clip(tmp_path / "pool", full=False)
    raw = json.loads((oc / "open_clip_config.json").read_text())
    raw["model_cfg"]["vision_cfg"]["pool_type"] = "avg"
    (oc / "open_clip_config.json").write_text(json.dumps(raw))
    with pytest.raises(convert.ConversionError, match="pool_type='avg'"):
        convert_params("open_clip", oc)


def test_parity_fails_when_the_port_computes_something_else(tmp_path, monkeypatch):
    """The parity check would see a wrong design choice: CLIP's patches normalised like open_clip's."""
    import dataclasses

    from jaxprobe.encoders import checkpoint

    src = make_clip(tmp_path / "src", full=False, preprocessor=None, seed=9)
    convert.convert("clip", src, tmp_path / "out", parity=False)
    read = checkpoint.read_meta

    def normed(folder):
        cfg, spec, meta = read(folder)
        return dataclasses.replace(cfg, norm_patches=True), spec, meta

    monkeypatch.setattr(checkpoint, "read_meta", normed)
    report = convert.verify(tmp_path / "out", src, n_images=1, log=lambda m: None)
    assert report["passed"] is False
    assert all(c["patches"]["rel"] > 0.1 and c["global"]["rel"] <= TOL for c in report["cases"])


# ------------------------------------------------------------------------------------- the command line, hub ids

def test_family_commands_and_hub_ids_offline(tmp_path, capsys):
    """``python -m convert dinov3 --src org/name`` resolves the id through huggingface_hub from a real cache
    layout with HF_HUB_OFFLINE=1; encoder.json records repo@commit; an id not in the cache is one error line."""
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--facebook--tiny-dinov3"
    make_dinov3(repo / "snapshots" / commit, full=False, seed=11)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}
    root = Path(__file__).resolve().parents[1]

    def run(*args):
        return subprocess.run([sys.executable, "-m", "convert", *args], env=env, capture_output=True, text=True,
                              cwd=root, timeout=600)

    done = run("dinov3", "--src", "facebook/tiny-dinov3", "--out", str(tmp_path / "out"), "--n-images", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "parity PASSED" in done.stdout
    meta = json.loads((tmp_path / "out" / "encoder.json").read_text())
    assert meta["provenance"]["hub"] == f"facebook/tiny-dinov3@{commit}"
    assert meta["provenance"]["family"] == "dinov3"
    again = run("verify", "--ckpt", str(tmp_path / "out"), "--src", f"facebook/tiny-dinov3@{commit}",
                "--n-images", "1", "--out-file", str(tmp_path / "p.json"))
    assert again.returncode == 0, again.stderr[-2000:]
    missing = run("clip", "--src", "openai/not-cached", "--out", str(tmp_path / "o2"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    lines = [line for line in missing.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: --src: openai/not-cached is not in the Hugging Face cache")
    assert "huggingface-cli download openai/not-cached" in lines[-1]
    assert not (tmp_path / "o2").exists()


def test_every_family_has_a_command(capsys):
    with pytest.raises(SystemExit):
        convert_main(["--help"])
    out = capsys.readouterr().out
    for name in ("dinov2", "dinov3", "siglip", "clip", "open_clip", "rad_dino", "chexagent", "biomedclip"):
        assert name in out


