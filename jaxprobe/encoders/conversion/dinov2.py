"""RAD-DINO / DINOv2: a Hugging Face ``Dinov2Model`` or ``Dinov2WithRegistersModel`` folder (config.json +
model.safetensors | pytorch_model.bin); the registers model is the same family with ``registers`` > 0.

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

from .hf import hf_folder, read_json
from .rules import ConversionError, layernorm_rules, linear_rules, rule, same, conv_kernel
from .source import Source

WEIGHTS = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
_V5_NAMES = [
    (re.compile(r"\.attention\.q_proj\."), ".attention.attention.query."),
    (re.compile(r"\.attention\.k_proj\."), ".attention.attention.key."),
    (re.compile(r"\.attention\.v_proj\."), ".attention.attention.value."),
    (re.compile(r"\.attention\.o_proj\."), ".attention.output.dense."),
]


# the family command's defaults where a folder has no preprocessor_config.json (transformers' BitImageProcessor)
DEFAULT_SPEC = EncoderSpec("dinov2", 224, 14, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                           "shortest_edge_center_crop", 768, 768)
MODEL_TYPES = ("dinov2", "dinov2_with_registers")


def canonical_key(key: str) -> str:
    for prefix in ("dinov2.", "dinov2_with_registers."):  # weights saved from a task model (e.g. classification)
        if key.startswith(prefix):
            key = key[len(prefix):]
    for pattern, legacy in _V5_NAMES:
        key = pattern.sub(legacy, key)
    return key


def config_from_hf(cfg: dict, where: str) -> ViTConfig:
    model_type = cfg.get("model_type", "dinov2")
    if model_type not in MODEL_TYPES:
        raise ConversionError(f"{where}: model_type {model_type!r} is not a DINOv2 model (expected one of "
                              f"{list(MODEL_TYPES)}; DINOv3 folders convert with `python -m convert dinov3`)")
    registers = int(cfg.get("num_register_tokens", 4)) if model_type == "dinov2_with_registers" else 0
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
        # Dinov2WithRegistersEmbeddings resamples with antialias=True, Dinov2Embeddings without
        pos_interp="torch_bicubic_aa" if registers else "torch_bicubic",
        registers=registers,
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
        *([rule(("registers",), "embeddings.register_tokens", (1, cfg.registers, d))] if cfg.registers else []),
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
    """The original ``transformers.Dinov2Model`` (or ``Dinov2WithRegistersModel``); returns f(pixels NHWC) ->
    (``pooler_output``, the patch tokens of ``last_hidden_state``) after the LN."""
    import torch
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    from .hf import quiet_transformers

    registers = read_json(src / "config.json").get("model_type") == "dinov2_with_registers"
    with quiet_transformers():
        model = (Dinov2WithRegistersModel if registers else Dinov2Model).from_pretrained(str(src)).float().eval()
    prefix = 1 + (model.config.num_register_tokens if registers else 0)

    def embed(pixels: np.ndarray):
        with torch.no_grad():
            out = model(pixel_values=torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())
        h = out.last_hidden_state.numpy()
        b, gh, gw = pixels.shape[0], pixels.shape[1] // model.config.patch_size, pixels.shape[2] // model.config.patch_size
        return out.pooler_output.numpy(), h[:, prefix:].reshape(b, gh, gw, -1)

    return embed
