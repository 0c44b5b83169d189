"""DINOv3 ViT: a Hugging Face ``DINOv3ViTModel`` folder (config.json + model.safetensors | pytorch_model.bin).

Files written by ``save_pretrained`` name the blocks ``layer.N.*``; transformers 5 in memory (so a ``state_dict()``
saved directly) ``model.layer.N.*``; both are read. Projections the config declares bias-free (the key, by
default) get a zero bias in the Flax module, which computes the same numbers. The gated (SwiGLU) MLP of the largest
DINOv3 models is not ported: such a folder is refused with a message.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxprobe.encoders.config import ViTConfig
from jaxprobe.encoders.spec import EncoderSpec

from .hf import hf_folder, read_json
from .rules import ConversionError, Rule, conv_kernel, layernorm_rules, linear_rules, rule, same
from .source import Source

WEIGHTS = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
# transformers' DINOv3ViTImageProcessor: a direct bilinear resize to 224 x 224, ImageNet mean/std
DEFAULT_SPEC = EncoderSpec("dinov3", 224, 16, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "direct", 768, 768,
                           resample="bilinear")
# DINOv3ViTConfig's defaults, used where config.json leaves a field out
_DEFAULTS = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 12, "num_attention_heads": 6,
             "hidden_act": "gelu", "layer_norm_eps": 1e-5, "rope_theta": 100.0, "image_size": 224, "patch_size": 16,
             "query_bias": True, "key_bias": False, "value_bias": True, "proj_bias": True, "mlp_bias": True,
             "use_gated_mlp": False, "num_register_tokens": 0}


def settings(cfg: dict, where: str) -> dict:
    if cfg.get("model_type") != "dinov3_vit":
        raise ConversionError(f"{where}: model_type {cfg.get('model_type')!r} is not a DINOv3 ViT (expected "
                              "'dinov3_vit'; ConvNeXt DINOv3 models are not supported)")
    s = {**_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    if s["use_gated_mlp"]:
        raise ConversionError(f"{where}: use_gated_mlp=true (the SwiGLU MLP of DINOv3 ViT-H+/7B) is not supported")
    if s["hidden_act"] != "gelu":
        raise ConversionError(f"{where}: hidden_act {s['hidden_act']!r} is not supported (expected 'gelu')")
    for key in ("image_size", "patch_size"):
        if isinstance(s[key], (list, tuple)):
            if len(set(s[key])) != 1:
                raise ConversionError(f"{where}: non-square {key} {s[key]} is not supported")
            s[key] = s[key][0]
    return s


def config_from_hf(cfg: dict, where: str) -> ViTConfig:
    s = settings(cfg, where)
    return ViTConfig(
        family="dinov3",
        image_size=int(s["image_size"]),
        patch_size=int(s["patch_size"]),
        width=int(s["hidden_size"]),
        depth=int(s["num_hidden_layers"]),
        num_heads=int(s["num_attention_heads"]),
        mlp_dim=int(s["intermediate_size"]),
        layer_norm_eps=float(s["layer_norm_eps"]),
        layerscale=True,
        class_token=True,
        pool="cls",
        registers=int(s["num_register_tokens"]),
        rope_theta=float(s["rope_theta"]),
    )


def canonical_key(key: str) -> str:
    return key[len("model."):] if key.startswith("model.layer.") else key


def read_source(src: Path, name: str, default: EncoderSpec) -> Source:
    """The folder's architecture, spec and weights; a projection the config declares bias-free gets a zero bias
    tensor here (the Flax module always has one), so the rules are the same for every DINOv3 folder."""
    cfg, spec, spec_source, sd, files = hf_folder(src, WEIGHTS, config_from_hf, default, center_crop=False,
                                                  canonical_key=canonical_key)
    flags = settings(read_json(src / "config.json"), str(src / "config.json"))
    if not cfg.registers and sd.get("embeddings.register_tokens", np.zeros(1)).size == 0:
        sd.pop("embeddings.register_tokens", None)  # transformers keeps a [1, 0, D] tensor
    d, hidden = cfg.width, cfg.mlp_dim
    for i in range(cfg.depth):
        for proj, flag, n in (("attention.q_proj", "query_bias", d), ("attention.k_proj", "key_bias", d),
                              ("attention.v_proj", "value_bias", d), ("attention.o_proj", "proj_bias", d),
                              ("mlp.up_proj", "mlp_bias", hidden), ("mlp.down_proj", "mlp_bias", d)):
            key = f"layer.{i}.{proj}.bias"
            if not flags[flag]:
                if key in sd:
                    raise ConversionError(f"{files[0]}: {key} present but config.json says {flag}=false")
                sd[key] = np.zeros((n,), np.float32)
    return Source(name, cfg, spec, sd, files, spec_source)


def ignore(key: str) -> bool:
    return key == "embeddings.mask_token"  # only for masked pre-training


def rules(cfg: ViTConfig) -> list[Rule]:
    d, p = cfg.width, cfg.patch_size
    out = [
        rule(("cls_token",), "embeddings.cls_token", (1, 1, d)),
        rule(("patch_embed", "kernel"), "embeddings.patch_embeddings.weight", (d, 3, p, p), conv_kernel),
        rule(("patch_embed", "bias"), "embeddings.patch_embeddings.bias", (d,)),
        *layernorm_rules(("norm",), "norm", d),
    ]
    if cfg.registers:
        out.append(rule(("registers",), "embeddings.register_tokens", (1, cfg.registers, d)))
    for i in range(cfg.depth):
        t, f = f"layer.{i}", ("encoder", "blocks", i)
        out += layernorm_rules((*f, "norm1"), f"{t}.norm1", d)
        for ours, theirs in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj")):
            out += linear_rules((*f, "attn", ours), f"{t}.attention.{theirs}", d, d)
        out.append(rule((*f, "ls1"), f"{t}.layer_scale1.lambda1", (d,), same))
        out += layernorm_rules((*f, "norm2"), f"{t}.norm2", d)
        out += linear_rules((*f, "mlp", "fc1"), f"{t}.mlp.up_proj", d, cfg.mlp_dim)
        out += linear_rules((*f, "mlp", "fc2"), f"{t}.mlp.down_proj", cfg.mlp_dim, d)
        out.append(rule((*f, "ls2"), f"{t}.layer_scale2.lambda1", (d,), same))
    return out


def reference(src: Path):
    """The original ``transformers.DINOv3ViTModel``: (``pooler_output``, the patch tokens of ``last_hidden_state``)."""
    import torch
    from transformers import DINOv3ViTModel

    from .hf import quiet_transformers

    with quiet_transformers():
        model = DINOv3ViTModel.from_pretrained(str(src)).float().eval()
    prefix = 1 + model.config.num_register_tokens
    patch = model.config.patch_size

    def embed(pixels: np.ndarray):
        b, h, w, _ = pixels.shape
        with torch.no_grad():
            out = model(pixel_values=torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())
        tokens = out.last_hidden_state.numpy()[:, prefix:]
        return out.pooler_output.numpy(), tokens.reshape(b, h // patch, w // patch, -1)

    return embed
