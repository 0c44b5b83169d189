"""CLIP image towers written by transformers: a full ``CLIPModel`` folder (``model_type`` "clip": the vision tower
under ``vision_model.`` plus ``visual_projection``; the text tower is ignored), a ``CLIPVisionModelWithProjection``
or a bare ``CLIPVisionModel`` (``clip_vision_model``; keys with or without the ``vision_model.`` prefix). OpenAI's
ViT-B/32, B/16 and L/14 layouts (QuickGELU) and GELU towers are read from config.json alone. The global embedding
is the projected one (``get_image_features``) when the folder has ``visual_projection``, else ``pooler_output``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxprobe.encoders.config import ViTConfig
from jaxprobe.encoders.registry import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from jaxprobe.encoders.spec import EncoderSpec

from .hf import find_weights, load_state_dict, preprocessor_spec, read_json
from .rules import ConversionError, Rule, conv_kernel, layernorm_rules, linear_rules, rule
from .source import Source

WEIGHTS = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
# transformers' CLIPImageProcessor: shortest edge to 224 (bicubic), centre crop, OpenAI mean/std
DEFAULT_SPEC = EncoderSpec("clip", 224, 16, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, "shortest_edge_center_crop", 512, 768)
# CLIPVisionConfig's defaults, used where config.json leaves a field out
_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "image_size": 224, "patch_size": 32, "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu"}
_ACTIVATIONS = {"quick_gelu": {"quick_gelu": True}, "gelu": {}, "gelu_pytorch_tanh": {"gelu_approximate": True}}


def vision_config(cfg: dict, where: str) -> dict:
    model_type = cfg.get("model_type")
    if model_type == "clip":
        vc = cfg.get("vision_config") or {}
    elif model_type == "clip_vision_model":
        vc = cfg
    else:
        raise ConversionError(f"{where}: model_type {model_type!r} is not a transformers CLIP model (expected 'clip' "
                              "or 'clip_vision_model'; open_clip folders convert with `python -m convert open_clip`)")
    vc = {**_VISION_DEFAULTS, **{k: v for k, v in vc.items() if v is not None}}
    if vc["hidden_act"] not in _ACTIVATIONS:
        raise ConversionError(f"{where}: hidden_act {vc['hidden_act']!r} is not supported "
                              f"(expected one of {sorted(_ACTIVATIONS)})")
    return vc


def config_from_hf(cfg: dict, where: str, proj_dim: int | None) -> ViTConfig:
    vc = vision_config(cfg, where)
    return ViTConfig(
        family="clip",
        image_size=int(vc["image_size"]),
        patch_size=int(vc["patch_size"]),
        width=int(vc["hidden_size"]),
        depth=int(vc["num_hidden_layers"]),
        num_heads=int(vc["num_attention_heads"]),
        mlp_dim=int(vc["intermediate_size"]),
        layer_norm_eps=float(vc["layer_norm_eps"]),
        class_token=True,
        pool="cls",
        proj_dim=proj_dim,
        pos_interp="torch_bicubic",  # CLIPVisionEmbeddings.interpolate_pos_encoding: bicubic, no antialiasing
        pre_norm=True,
        norm_patches=False,
        **_ACTIVATIONS[vc["hidden_act"]],
    )


def canonical_key(key: str) -> str:
    return key[len("vision_model."):] if key.startswith("vision_model.") else key


def read_source(src: Path, name: str, default: EncoderSpec) -> Source:
    """The folder's architecture (the projection's size from its weights), spec and weights; the patch embedding
    (bias-free in CLIP) gets a zero bias."""
    where = str(src / "config.json")
    raw = read_json(src / "config.json")
    files = find_weights(src, WEIGHTS)
    sd = {canonical_key(k): v for k, v in load_state_dict(files).items()}
    proj = sd.get("visual_projection.weight")
    config = config_from_hf(raw, where, int(proj.shape[0]) if proj is not None else None)
    if "embeddings.patch_embedding.bias" in sd:
        raise ConversionError(f"{files[0]}: a CLIP patch embedding with a bias is not a transformers CLIP tower")
    sd["embeddings.patch_embedding.bias"] = np.zeros((config.width,), np.float32)
    spec, spec_source = preprocessor_spec(read_json(src / "preprocessor_config.json", required=False), config, default,
                                          str(src / "preprocessor_config.json"), center_crop=True)
    return Source(name, config, spec, sd, files, spec_source)


def ignore(key: str) -> bool:
    return key.startswith(("text_model.", "text_projection.", "logit_scale")) or key == "embeddings.position_ids"


def rules(cfg: ViTConfig) -> list[Rule]:
    d, p, g = cfg.width, cfg.patch_size, cfg.grid
    out = [
        rule(("cls_token",), "embeddings.class_embedding", (d,), lambda w: w.reshape(1, 1, d)),
        rule(("pos_embed",), "embeddings.position_embedding.weight", (1 + g * g, d), lambda w: w[None]),
        rule(("patch_embed", "kernel"), "embeddings.patch_embedding.weight", (d, 3, p, p), conv_kernel),
        rule(("patch_embed", "bias"), "embeddings.patch_embedding.bias", (d,)),
        *layernorm_rules(("pre_norm",), "pre_layrnorm", d),
        *layernorm_rules(("norm",), "post_layernorm", d),
    ]
    if cfg.proj_dim:
        out += linear_rules(("proj",), "visual_projection", d, cfg.proj_dim, bias=False)
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
    """The original transformers model: (``visual_projection(pooler_output)`` — ``get_image_features`` — or
    ``pooler_output`` without a projection, ``last_hidden_state[:, 1:]`` as a grid)."""
    import torch
    from transformers import CLIPModel, CLIPVisionModel, CLIPVisionModelWithProjection

    from .hf import quiet_transformers

    raw = read_json(src / "config.json")
    has_proj = any(k.endswith("visual_projection.weight") for k in load_state_dict(find_weights(src, WEIGHTS)))
    cls = CLIPModel if raw.get("model_type") == "clip" else (
        CLIPVisionModelWithProjection if has_proj else CLIPVisionModel)
    with quiet_transformers():
        model = cls.from_pretrained(str(src)).float().eval()
    tower = getattr(model, "vision_model", model)  # transformers 5's CLIPVisionModel is the tower itself
    patch, native = tower.config.patch_size, tower.config.image_size

    def embed(pixels: np.ndarray):
        b, h, w, _ = pixels.shape
        with torch.no_grad():
            out = tower(pixel_values=torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
                        interpolate_pos_encoding=(h, w) != (native, native))
            pooled = model.visual_projection(out.pooler_output) if has_proj else out.pooler_output
        tokens = out.last_hidden_state.numpy()[:, 1:]
        return pooled.numpy(), tokens.reshape(b, h // patch, w // patch, -1)

    return embed
