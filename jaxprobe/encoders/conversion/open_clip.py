"""open_clip image towers: an open_clip folder (``open_clip_config.json`` + ``open_clip_pytorch_model.bin`` or
``.safetensors``, as the hub's open_clip repos hold them). A ``vision_cfg`` naming a timm model (BiomedCLIP) is
read by ``timm_vit``; otherwise the tower is open_clip's native ``VisionTransformer`` (OpenAI and LAION CLIP
ViT-B/32, B/16, L/14, ...): conv patch embedding without bias, class token, position table, ``ln_pre``, pre-norm
blocks (QuickGELU when the model config says ``quick_gelu``), ``ln_post`` on every token, then ``pooled @ proj``.
Keys stay under ``visual.`` (the text tower has keys of the same names); everything else is ignored. Options the
port does not have (attentional pooling, average pooling, ``final_ln_after_pool``, qk-norm and the other custom
block options, a ResNet tower) stop the conversion with a message.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxprobe.encoders.config import ViTConfig
from jaxprobe.encoders.registry import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from jaxprobe.encoders.spec import EncoderSpec

from . import timm_vit
from .hf import find_weights, load_state_dict, read_json
from .rules import ConversionError, Rule, conv_kernel, fused_qkv_rules, layernorm_rules, linear_rules, rule, same
from .source import Source

WEIGHTS = timm_vit.WEIGHTS
CONFIG = timm_vit.CONFIG
DEFAULT_SPEC = EncoderSpec("open_clip", 224, 32, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, "shortest_edge_center_crop", 512,
                           768)
# options of open_clip's CLIPVisionCfg whose non-default values the port does not implement
_UNSUPPORTED = {"attentional_pool": False, "pos_embed_type": "learnable", "final_ln_after_pool": False,
                "pool_type": "tok", "qk_norm": False, "scaled_cosine_attn": False, "scale_heads": False,
                "scale_attn_inner": False, "scale_attn": False, "scale_fc": False, "act_kwargs": None}


def model_cfg(raw: dict, where: str) -> tuple[dict, dict]:
    cfg = raw.get("model_cfg", raw)
    vc = cfg.get("vision_cfg")
    if not isinstance(vc, dict):
        raise ConversionError(f"{where}: no model_cfg.vision_cfg")
    if "embed_dim" not in cfg:
        raise ConversionError(f"{where}: model_cfg.embed_dim missing")
    return cfg, vc


def config_from_open_clip(raw: dict, where: str) -> ViTConfig:
    cfg, vc = model_cfg(raw, where)
    if isinstance(vc.get("layers", 12), (list, tuple)):
        raise ConversionError(f"{where}: vision_cfg.layers is a list — a ResNet image tower, not a ViT")
    bad = [f"{k}={vc[k]!r}" for k, default in _UNSUPPORTED.items() if k in vc and vc[k] != default]
    if vc.get("block_type") not in (None, "default"):
        bad.append(f"block_type={vc['block_type']!r}")
    if bad:
        raise ConversionError(f"{where}: vision_cfg options the Flax port does not have: {bad}")
    width = int(vc.get("width", 768))
    head_width = int(vc.get("head_width", 64))
    image_size = vc.get("image_size", 224)
    patch_size = vc.get("patch_size", 16)
    eps = float((vc.get("norm_kwargs") or {}).get("eps", 1e-5))
    return ViTConfig(
        family="open_clip",
        image_size=int(image_size[0] if isinstance(image_size, (list, tuple)) else image_size),
        patch_size=int(patch_size[0] if isinstance(patch_size, (list, tuple)) else patch_size),
        width=width,
        depth=int(vc.get("layers", 12)),
        num_heads=width // head_width,
        mlp_dim=int(width * float(vc.get("mlp_ratio", 4.0))),
        layer_norm_eps=eps,
        quick_gelu=bool(cfg.get("quick_gelu", False)),
        layerscale=vc.get("ls_init_value") is not None,
        class_token=True,
        pool="cls",
        proj_dim=int(cfg["embed_dim"]),
        pos_interp="torch_bicubic_aa",  # open_clip's resize_pos_embed: bicubic, antialias=True
        pre_norm=not vc.get("no_ln_pre", False),
        norm_patches=True,
    )


def read_source(src: Path, name: str, default: EncoderSpec) -> Source:
    """A timm-backed folder is ``timm_vit``'s; a native tower is read here (the conv patch embedding, bias-free in
    open_clip, gets a zero bias)."""
    where = str(src / CONFIG)
    raw = read_json(src / CONFIG)
    _, vc = model_cfg(raw, where)
    if vc.get("timm_model_name"):
        return timm_vit.read_source(src, name, default)
    config = config_from_open_clip(raw, where)
    spec, spec_source = timm_vit.spec_from_open_clip(raw, config, where, default)
    files = find_weights(src, WEIGHTS)
    sd = load_state_dict(files)
    if "visual.conv1.weight" not in sd:
        raise ConversionError(f"{files[0]}: no 'visual.conv1.weight' — not an open_clip native ViT checkpoint")
    sd["visual.conv1.bias"] = np.zeros((config.width,), np.float32)
    return Source(name, config, spec, sd, files, spec_source)


def ignore(key: str) -> bool:
    return not key.startswith("visual.")  # the text tower, logit scale and bias


def rules(cfg: ViTConfig) -> list[Rule]:
    d, p, g = cfg.width, cfg.patch_size, cfg.grid
    out = [
        rule(("cls_token",), "visual.class_embedding", (d,), lambda w: w.reshape(1, 1, d)),
        rule(("pos_embed",), "visual.positional_embedding", (1 + g * g, d), lambda w: w[None]),
        rule(("patch_embed", "kernel"), "visual.conv1.weight", (d, 3, p, p), conv_kernel),
        rule(("patch_embed", "bias"), "visual.conv1.bias", (d,)),
        rule(("proj", "kernel"), "visual.proj", (d, cfg.proj_dim), same),  # used as pooled @ proj: already [in, out]
        *layernorm_rules(("norm",), "visual.ln_post", d),
    ]
    if cfg.pre_norm:
        out += layernorm_rules(("pre_norm",), "visual.ln_pre", d)
    for i in range(cfg.depth):
        t, f = f"visual.transformer.resblocks.{i}", ("encoder", "blocks", i)
        out += layernorm_rules((*f, "norm1"), f"{t}.ln_1", d)
        out += fused_qkv_rules((*f, "attn"), f"{t}.attn.in_proj_weight", f"{t}.attn.in_proj_bias", d)
        out += linear_rules((*f, "attn", "o"), f"{t}.attn.out_proj", d, d)
        out += layernorm_rules((*f, "norm2"), f"{t}.ln_2", d)
        out += linear_rules((*f, "mlp", "fc1"), f"{t}.mlp.c_fc", d, cfg.mlp_dim)
        out += linear_rules((*f, "mlp", "fc2"), f"{t}.mlp.c_proj", cfg.mlp_dim, d)
        if cfg.layerscale:
            out += [rule((*f, "ls1"), f"{t}.ls_1.gamma", (d,)), rule((*f, "ls2"), f"{t}.ls_2.gamma", (d,))]
    return out


def reference(src: Path):
    """open_clip's own image tower (``open_clip.model._build_vision_tower``, what ``create_model`` puts at
    ``model.visual``) with the checkpoint's ``visual.*`` weights: (``visual(x)`` = ``encode_image(normalize=False)``,
    its ``output_tokens`` as a grid). At another size the tower is built at that size and the weights go through
    open_clip's ``resize_pos_embed``, as open_clip loads a checkpoint into a model of another size."""
    import types

    import torch
    from open_clip.model import _build_vision_tower, resize_pos_embed

    raw = read_json(src / CONFIG)
    cfg, vc = model_cfg(raw, str(src / CONFIG))
    if vc.get("timm_model_name"):
        return timm_vit.reference(src)
    state = {k: torch.from_numpy(v) for k, v in load_state_dict(find_weights(src, WEIGHTS)).items()
             if k.startswith("visual.")}
    towers: dict[int, torch.nn.Module] = {}

    def tower(size: int) -> torch.nn.Module:
        if size not in towers:
            visual = _build_vision_tower(int(cfg["embed_dim"]), {**vc, "image_size": size, "output_tokens": True},
                                         quick_gelu=bool(cfg.get("quick_gelu", False)))
            sd = dict(state)
            resize_pos_embed(sd, types.SimpleNamespace(visual=visual))
            visual.load_state_dict({k[len("visual."):]: v for k, v in sd.items()}, strict=True)
            towers[size] = visual.float().eval()
        return towers[size]

    def embed(pixels: np.ndarray):
        b, h, w, _ = pixels.shape
        model = tower(h)
        with torch.no_grad():
            pooled, tokens = model(torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())
        p = model.patch_size[0]
        return pooled.numpy(), tokens.numpy().reshape(b, h // p, w // p, -1)

    return embed
