"""CheXagent's vision encoder: a Hugging Face SigLIP folder — the full XraySigLIP ``SiglipModel`` (vision tower
under ``vision_model.``, text tower ignored) or a bare ``SiglipVisionModel`` (keys with or without the prefix)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxprobe.encoders.spec import EncoderSpec
from jaxprobe.encoders.config import ViTConfig

from .hf import hf_folder
from .rules import (ConversionError, Rule, conv_kernel, fused_qkv_rules, layernorm_rules, linear_rules, rule)
from .source import Source

WEIGHTS = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
# transformers' SiglipVisionConfig defaults, used where config.json leaves a field out.
_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "image_size": 224, "patch_size": 16, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh",
                    "vision_use_head": True}
# the family command's defaults where a folder has no preprocessor_config.json (transformers' SiglipImageProcessor)
DEFAULT_SPEC = EncoderSpec("siglip", 224, 16, (0.5,) * 3, (0.5,) * 3, "direct", 768, 768)
_IGNORED_PREFIXES = ("text_model.", "logit_scale", "logit_bias")


def vision_config(cfg: dict, where: str) -> dict:
    model_type = cfg.get("model_type")
    if model_type == "siglip":
        vc = cfg.get("vision_config") or {}
    elif model_type == "siglip_vision_model":
        vc = cfg
    else:
        raise ConversionError(f"{where}: model_type {model_type!r} is not a SigLIP model "
                              "(expected 'siglip' or 'siglip_vision_model')")
    return {**_VISION_DEFAULTS, **{k: v for k, v in vc.items() if v is not None}}


def config_from_hf(cfg: dict, where: str) -> ViTConfig:
    vc = vision_config(cfg, where)
    if not vc["vision_use_head"]:
        raise ConversionError(f"{where}: vision_use_head=false — this tower has no attention-pooling head, so "
                              "there is no global embedding to port")
    act = vc["hidden_act"]
    if act not in ("gelu_pytorch_tanh", "gelu"):
        raise ConversionError(f"{where}: hidden_act {act!r} is not supported")
    return ViTConfig(
        family="siglip",
        image_size=int(vc["image_size"]),
        patch_size=int(vc["patch_size"]),
        width=int(vc["hidden_size"]),
        depth=int(vc["num_hidden_layers"]),
        num_heads=int(vc["num_attention_heads"]),
        mlp_dim=int(vc["intermediate_size"]),
        layer_norm_eps=float(vc["layer_norm_eps"]),
        gelu_approximate=act == "gelu_pytorch_tanh",
        qkv_bias=True,
        layerscale=False,
        class_token=False,
        pool="map",
        pos_interp="torch_bicubic",
    )


def canonical_key(key: str) -> str:
    return key[len("vision_model."):] if key.startswith("vision_model.") else key


def read_source(src: Path, name: str, default: EncoderSpec) -> Source:
    """The folder's architecture, spec and weights; ``default`` (the registry entry's spec) fills in what the
    folder's preprocessor file leaves out."""
    cfg, spec, spec_source, sd, files = hf_folder(src, WEIGHTS, config_from_hf, default, center_crop=False,
                                                  canonical_key=canonical_key)
    return Source(name, cfg, spec, sd, files, spec_source)


def ignore(key: str) -> bool:
    return key.startswith(_IGNORED_PREFIXES) or key == "embeddings.position_ids"


def rules(cfg: ViTConfig) -> list[Rule]:
    d, p, g = cfg.width, cfg.patch_size, cfg.grid
    out = [
        rule(("patch_embed", "kernel"), "embeddings.patch_embedding.weight", (d, 3, p, p), conv_kernel),
        rule(("patch_embed", "bias"), "embeddings.patch_embedding.bias", (d,)),
        rule(("pos_embed",), "embeddings.position_embedding.weight", (g * g, d), lambda w: w[None]),
        *layernorm_rules(("norm",), "post_layernorm", d),
        rule(("head", "probe"), "head.probe", (1, 1, d)),
        *fused_qkv_rules(("head", "attn"), "head.attention.in_proj_weight", "head.attention.in_proj_bias", d),
        *linear_rules(("head", "attn", "o"), "head.attention.out_proj", d, d),
        *layernorm_rules(("head", "norm"), "head.layernorm", d),
        *linear_rules(("head", "mlp", "fc1"), "head.mlp.fc1", d, cfg.mlp_dim),
        *linear_rules(("head", "mlp", "fc2"), "head.mlp.fc2", cfg.mlp_dim, d),
    ]
    for i in range(cfg.depth):
        t, f = f"encoder.layers.{i}", ("encoder", "blocks", i)
        out += layernorm_rules((*f, "norm1"), f"{t}.layer_norm1", d)
        for ours, theirs in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")):
            out += linear_rules((*f, "attn", ours), f"{t}.self_attn.{theirs}", d, d)
        out += layernorm_rules((*f, "norm2"), f"{t}.layer_norm2", d)
        out += linear_rules((*f, "mlp", "fc1"), f"{t}.mlp.fc1", d, cfg.mlp_dim)
        out += linear_rules((*f, "mlp", "fc2"), f"{t}.mlp.fc2", cfg.mlp_dim, d)
    return out


def reference(src: Path):
    """The original ``transformers.SiglipVisionModel``: (pooler_output, last_hidden_state as a grid)."""
    import torch
    from transformers import SiglipVisionModel

    from .hf import quiet_transformers

    with quiet_transformers():
        model = SiglipVisionModel.from_pretrained(str(src)).float().eval()
    patch = model.config.patch_size
    native = model.config.image_size

    def embed(pixels: np.ndarray):
        b, h, w, _ = pixels.shape
        with torch.no_grad():
            out = model(pixel_values=torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
                        interpolate_pos_encoding=(h, w) != (native, native))
        return out.pooler_output.numpy(), out.last_hidden_state.numpy().reshape(b, h // patch, w // patch, -1)

    return embed
