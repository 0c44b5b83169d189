"""BiomedCLIP's image tower: an open_clip folder (``open_clip_config.json`` + ``open_clip_pytorch_model.bin`` or
``.safetensors``) whose ``vision_cfg`` names a timm ViT. Keys ``visual.trunk.*`` and ``visual.head.proj.weight``;
the text tower is ignored. The timm architecture (heads, depth, norms) is read from timm's own model definition
(instantiated on the meta device, no weights); unsupported timm options stop the conversion with a message.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxprobe.encoders.spec import EncoderSpec
from jaxprobe.encoders.config import ViTConfig

from .hf import find_weights, load_state_dict, read_json
from .rules import ConversionError, Rule, conv_kernel, fused_qkv_rules, layernorm_rules, linear_rules, rule
from .source import Source

WEIGHTS = ["open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
           "open_clip_model.bin", "pytorch_model.bin"]
CONFIG = "open_clip_config.json"
# where open_clip_config.json has no preprocess_cfg: open_clip's defaults (OpenAI CLIP mean/std, shortest edge + crop)
DEFAULT_SPEC = EncoderSpec("timm_vit", 224, 16, (0.48145466, 0.4578275, 0.40821073),
                           (0.26862954, 0.26130258, 0.27577711), "shortest_edge_center_crop", 512, 768)


def _vision_cfg(cfg: dict, where: str) -> tuple[dict, int]:
    model_cfg = cfg.get("model_cfg", cfg)
    vc = model_cfg.get("vision_cfg")
    if not isinstance(vc, dict):
        raise ConversionError(f"{where}: no model_cfg.vision_cfg")
    if not vc.get("timm_model_name"):
        raise ConversionError(f"{where}: vision_cfg has no timm_model_name — an open_clip native tower; convert "
                              "it with `python -m convert open_clip`")
    if "embed_dim" not in model_cfg:
        raise ConversionError(f"{where}: model_cfg.embed_dim missing")
    return vc, int(model_cfg["embed_dim"])


def _timm_architecture(name: str, image_size: int, where: str) -> dict:
    import timm
    import torch

    try:
        with torch.device("meta"):
            trunk = timm.create_model(name, pretrained=False, num_classes=0, img_size=image_size)
    except Exception as e:
        raise ConversionError(f"{where}: timm cannot build {name!r} ({e})") from None
    from torch import nn

    blk = trunk.blocks[0]
    unsupported = []
    if getattr(trunk, "reg_token", None) is not None:
        unsupported.append("register tokens")
    if getattr(trunk, "no_embed_class", False):
        unsupported.append("no_embed_class")
    if getattr(trunk, "cls_token", None) is None:
        unsupported.append("no class token")
    if getattr(trunk, "global_pool", "token") != "token":
        unsupported.append(f"global_pool={trunk.global_pool!r}")
    for attr in ("norm_pre", "fc_norm"):
        if not isinstance(getattr(trunk, attr, nn.Identity()), nn.Identity):
            unsupported.append(attr)
    if not isinstance(blk.ls1, nn.Identity) or not isinstance(getattr(blk.attn, "q_norm", nn.Identity()), nn.Identity):
        unsupported.append("layer scale / qk-norm")
    act = blk.mlp.act
    if not isinstance(act, nn.GELU):
        unsupported.append(f"MLP activation {type(act).__name__}")
    if unsupported:
        raise ConversionError(f"{where}: timm model {name!r} uses features the Flax port does not have: {unsupported}")
    return {
        "width": int(trunk.embed_dim),
        "depth": len(trunk.blocks),
        "num_heads": int(blk.attn.num_heads),
        "mlp_dim": int(blk.mlp.fc1.out_features),
        "patch_size": int(trunk.patch_embed.patch_size[0]),
        "layer_norm_eps": float(trunk.norm.eps),
        "gelu_approximate": act.approximate == "tanh",
        "qkv_bias": blk.attn.qkv.bias is not None,
    }


def config_from_open_clip(cfg: dict, where: str) -> tuple[ViTConfig, bool]:
    vc, embed_dim = _vision_cfg(cfg, where)
    pool = vc.get("timm_pool", "")
    if pool not in ("", None, "token"):
        raise ConversionError(f"{where}: timm_pool={pool!r} is not supported (BiomedCLIP uses '' = CLS token)")
    proj = vc.get("timm_proj", "linear")
    if proj not in ("linear", "none", None, ""):
        raise ConversionError(f"{where}: timm_proj={proj!r} is not supported (expected 'linear')")
    proj_bias = bool(vc.get("timm_proj_bias", False))
    if proj_bias:
        raise ConversionError(f"{where}: timm_proj_bias=true is not supported (BiomedCLIP's projection has no bias)")
    image_size = vc.get("image_size", 224)
    image_size = int(image_size[0] if isinstance(image_size, (list, tuple)) else image_size)
    arch = _timm_architecture(vc["timm_model_name"], image_size, where)
    config = ViTConfig(family="timm_vit", image_size=image_size, class_token=True, pool="cls", layerscale=False,
                       proj_dim=embed_dim if proj == "linear" else None, pos_interp="torch_bicubic_aa", **arch)
    return config, proj == "linear"


def spec_from_open_clip(cfg: dict, config: ViTConfig, where: str, default: EncoderSpec) -> tuple[EncoderSpec, str]:
    pre = cfg.get("preprocess_cfg") or {}
    mean = tuple(float(x) for x in pre.get("mean", default.mean))
    std = tuple(float(x) for x in pre.get("std", default.std))
    mode = pre.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        raise ConversionError(f"{where}: preprocess_cfg.resize_mode={mode!r} is not supported")
    interpolation = pre.get("interpolation", "bicubic")
    if interpolation != "bicubic":
        raise ConversionError(f"{where}: preprocess_cfg.interpolation={interpolation!r} is not supported")
    resize = "shortest_edge_center_crop" if mode == "shortest" else "direct"
    source = "open_clip_config.json preprocess_cfg" if pre else "defaults (open_clip: OpenAI CLIP mean/std)"
    return EncoderSpec(config.family, config.image_size, config.patch_size, mean, std, resize, config.global_dim,
                       config.width), source


def canonical_key(key: str) -> str:
    return key[len("visual."):] if key.startswith("visual.") else key


def read_source(src: Path, name: str, default: EncoderSpec) -> Source:
    """The folder's image-tower architecture, spec and weights; ``default`` (the registry entry's spec) fills in
    mean/std when open_clip_config.json has no preprocess_cfg."""
    where = str(src / CONFIG)
    raw = read_json(src / CONFIG)
    config, _ = config_from_open_clip(raw, where)
    spec, spec_source = spec_from_open_clip(raw, config, where, default)
    files = find_weights(src, WEIGHTS)
    sd = load_state_dict(files)
    if not any(k.startswith("visual.") for k in sd):
        raise ConversionError(f"{files[0]}: no 'visual.*' keys — not an open_clip CLIP checkpoint")
    sd = {canonical_key(k): v for k, v in sd.items()}
    return Source(name, config, spec, sd, files, spec_source)


def ignore(key: str) -> bool:
    # Everything outside the image tower (text tower, logit scale/bias) is not ported.
    return not key.startswith(("trunk.", "head."))


def rules(cfg: ViTConfig) -> list[Rule]:
    d, p, g = cfg.width, cfg.patch_size, cfg.grid
    out = [
        rule(("cls_token",), "trunk.cls_token", (1, 1, d)),
        rule(("pos_embed",), "trunk.pos_embed", (1, 1 + g * g, d)),
        rule(("patch_embed", "kernel"), "trunk.patch_embed.proj.weight", (d, 3, p, p), conv_kernel),
        rule(("patch_embed", "bias"), "trunk.patch_embed.proj.bias", (d,)),
        *layernorm_rules(("norm",), "trunk.norm", d),
    ]
    if cfg.proj_dim:
        out += linear_rules(("proj",), "head.proj", d, cfg.proj_dim, bias=False)
    for i in range(cfg.depth):
        t, f = f"trunk.blocks.{i}", ("encoder", "blocks", i)
        out += layernorm_rules((*f, "norm1"), f"{t}.norm1", d)
        out += fused_qkv_rules((*f, "attn"), f"{t}.attn.qkv.weight", f"{t}.attn.qkv.bias" if cfg.qkv_bias else None, d)
        out += linear_rules((*f, "attn", "o"), f"{t}.attn.proj", d, d)
        out += layernorm_rules((*f, "norm2"), f"{t}.norm2", d)
        out += linear_rules((*f, "mlp", "fc1"), f"{t}.mlp.fc1", d, cfg.mlp_dim)
        out += linear_rules((*f, "mlp", "fc2"), f"{t}.mlp.fc2", cfg.mlp_dim, d)
    return out


def build_reference_visual(src: Path):
    """open_clip's ``TimmModel`` built from the folder's vision_cfg, with the checkpoint's ``visual.*`` weights.

    The full CLIP model is not built: its BiomedBERT text tower fetches a config from the Hub even for random
    weights. ``TimmModel`` is exactly ``model.visual`` of ``open_clip.create_model``."""
    import torch
    from open_clip.timm_model import TimmModel

    raw = read_json(src / CONFIG)
    vc, embed_dim = _vision_cfg(raw, str(src / CONFIG))
    image_size = vc.get("image_size", 224)
    visual = TimmModel(vc["timm_model_name"], embed_dim=embed_dim, image_size=image_size,
                       pool=vc.get("timm_pool", ""), proj=vc.get("timm_proj", "linear"),
                       proj_bias=vc.get("timm_proj_bias", False), drop=vc.get("timm_drop", 0.0),
                       drop_path=vc.get("timm_drop_path"), pretrained=False)
    sd = load_state_dict(find_weights(src, WEIGHTS))
    visual_sd = {k[len("visual."):]: torch.from_numpy(v) for k, v in sd.items() if k.startswith("visual.")}
    visual.load_state_dict(visual_sd, strict=True)
    return visual.float().eval()


def reference(src: Path):
    """f(pixels NHWC) -> (``visual(x)`` = projected CLS, ``trunk.forward_features(x)[:, 1:]`` as a grid).

    At a non-native size the trunk is resized with timm's ``set_input_size`` (bicubic, antialiased)."""
    import copy

    import torch

    visual = build_reference_visual(src)
    native = visual.trunk.patch_embed.img_size[0]
    resized: dict[int, torch.nn.Module] = {}

    def embed(pixels: np.ndarray):
        b, h, w, _ = pixels.shape
        model = visual
        if (h, w) != (native, native):
            if h not in resized:
                resized[h] = copy.deepcopy(visual)
                resized[h].trunk.set_input_size(img_size=(h, w))
            model = resized[h]
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            pooled = model(x)
            tokens = model.trunk.forward_features(x)[:, model.trunk.num_prefix_tokens:]
        p = model.trunk.patch_embed.patch_size[0]
        return pooled.numpy(), tokens.numpy().reshape(b, h // p, w // p, -1)

    return embed
