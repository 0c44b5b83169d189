"""RAD-DINO / DINOv2: a Hugging Face ``Dinov2Model`` folder (config.json + model.safetensors | pytorch_model.bin).

Two key namings exist: files written by transformers (<= 4.x, and 5.x ``save_pretrained`` by default) use
``attention.attention.{query,key,value}`` / ``attention.output.dense``; transformers 5 in memory (and so any
``state_dict()`` saved directly) uses ``attention.{q,k,v,o}_proj``. Both are accepted.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from jaxprobe.encoders.spec import EncoderSpec
from jaxprobe.encoders.config import ViTConfig

from .hf import hf_folder
from .rules import ConversionError, layernorm_rules, linear_rules, rule, same, conv_kernel
from .source import Source

WEIGHTS = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
_V5_NAMES = [
    (re.compile(r"\.attention\.q_proj\."), ".attention.attention.query."),
    (re.compile(r"\.attention\.k_proj\."), ".attention.attention.key."),
    (re.compile(r"\.attention\.v_proj\."), ".attention.attention.value."),
    (re.compile(r"\.attention\.o_proj\."), ".attention.output.dense."),
]


def canonical_key(key: str) -> str:
    if key.startswith("dinov2."):  # weights saved from a Dinov2 task model (e.g. classification)
        key = key[len("dinov2."):]
    for pattern, legacy in _V5_NAMES:
        key = pattern.sub(legacy, key)
    return key


def config_from_hf(cfg: dict, where: str) -> ViTConfig:
    model_type = cfg.get("model_type", "dinov2")
    if model_type != "dinov2":
        raise ConversionError(f"{where}: model_type {model_type!r} is not supported (expected 'dinov2'; "
                              "DINOv2 with registers is a different architecture)")
    if cfg.get("use_swiglu_ffn", False):
        raise ConversionError(f"{where}: use_swiglu_ffn=true (DINOv2-giant's SwiGLU MLP) is not supported")
    act = cfg.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_pytorch_tanh"):
        raise ConversionError(f"{where}: hidden_act {act!r} is not supported (expected 'gelu')")
    width = int(cfg.get("hidden_size", 768))
    return ViTConfig(
        family="dinov2",
        image_size=int(cfg.get("image_size", 518)),
        patch_size=int(cfg.get("patch_size", 14)),
        width=width,
        depth=int(cfg.get("num_hidden_layers", 12)),
        num_heads=int(cfg.get("num_attention_heads", 12)),
        mlp_dim=int(width * cfg.get("mlp_ratio", 4)),
        layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-6)),
        gelu_approximate=act == "gelu_pytorch_tanh",
        qkv_bias=bool(cfg.get("qkv_bias", True)),
        layerscale=True,
        class_token=True,
        pool="cls",
        pos_interp="torch_bicubic",
    )


def read_source(src: Path, name: str, default: EncoderSpec) -> Source:
    """The folder's architecture, spec and weights; ``default`` (the registry entry's spec) fills in what the
    folder's preprocessor file leaves out."""
    cfg, spec, spec_source, sd, files = hf_folder(src, WEIGHTS, config_from_hf, default, center_crop=True,
                                                  canonical_key=canonical_key)
    return Source(name, cfg, spec, sd, files, spec_source)


def ignore(key: str) -> bool:
    return key == "embeddings.position_ids"


def rules(cfg: ViTConfig) -> list:
    d, p, g = cfg.width, cfg.patch_size, cfg.grid
    out = [
        rule(("cls_token",), "embeddings.cls_token", (1, 1, d)),
        rule(("mask_token",), "embeddings.mask_token", (1, d)),
        rule(("pos_embed",), "embeddings.position_embeddings", (1, 1 + g * g, d)),
        rule(("patch_embed", "kernel"), "embeddings.patch_embeddings.projection.weight", (d, 3, p, p), conv_kernel),
        rule(("patch_embed", "bias"), "embeddings.patch_embeddings.projection.bias", (d,)),
        *layernorm_rules(("norm",), "layernorm", d),
    ]
    for i in range(cfg.depth):
        t, f = f"encoder.layer.{i}", ("encoder", "blocks", i)
        out += layernorm_rules((*f, "norm1"), f"{t}.norm1", d)
        out += linear_rules((*f, "attn", "q"), f"{t}.attention.attention.query", d, d, cfg.qkv_bias)
        out += linear_rules((*f, "attn", "k"), f"{t}.attention.attention.key", d, d, cfg.qkv_bias)
        out += linear_rules((*f, "attn", "v"), f"{t}.attention.attention.value", d, d, cfg.qkv_bias)
        out += linear_rules((*f, "attn", "o"), f"{t}.attention.output.dense", d, d)
        out.append(rule((*f, "ls1"), f"{t}.layer_scale1.lambda1", (d,), same))
        out += layernorm_rules((*f, "norm2"), f"{t}.norm2", d)
        out += linear_rules((*f, "mlp", "fc1"), f"{t}.mlp.fc1", d, cfg.mlp_dim)
        out += linear_rules((*f, "mlp", "fc2"), f"{t}.mlp.fc2", cfg.mlp_dim, d)
        out.append(rule((*f, "ls2"), f"{t}.layer_scale2.lambda1", (d,), same))
    return out


def reference(src: Path):
    """The original ``transformers.Dinov2Model``; returns f(pixels NHWC) -> (CLS, patch tokens) after the LN."""
    import torch
    from transformers import Dinov2Model

    from .hf import quiet_transformers

    with quiet_transformers():
        model = Dinov2Model.from_pretrained(str(src)).float().eval()

    def embed(pixels: np.ndarray):
        with torch.no_grad():
            out = model(pixel_values=torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())
        h = out.last_hidden_state.numpy()
        b, gh, gw = pixels.shape[0], pixels.shape[1] // model.config.patch_size, pixels.shape[2] // model.config.patch_size
        return h[:, 0], h[:, 1:].reshape(b, gh, gw, -1)

    return embed
