"""Reference PyTorch encoders with every tensor re-randomised, saved in their libraries' own on-disk formats.

Default initialisation (LayerNorm 1/0, zero biases, LayerScale = 1) hides mapping bugs such as swapped LayerNorm
parameters or dropped biases, so every floating tensor gets fresh random values here, at scales that keep a
full-depth forward pass well conditioned.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

BIOMEDCLIP_CONFIG = {
    # The structure of microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224's open_clip_config.json.
    "model_cfg": {
        "embed_dim": 512,
        "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False,
                       "timm_pool": "", "timm_proj": "linear", "image_size": 224},
        "text_cfg": {"hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                     "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                     "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    norm_params = set()
    for m in module.modules():
        if isinstance(m, torch.nn.LayerNorm):
            norm_params.update(id(p) for p in m.parameters(recurse=False))
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if not t.is_floating_point() or name.endswith("inv_freq"):  # rotary frequencies are derived, not weights
            continue
        r = torch.randn(t.shape, generator=g)
        if id(t) in norm_params and name.endswith("weight"):
            t.copy_(1.0 + 0.2 * r)
        elif "lambda1" in name or "layer_scale" in name:
            t.copy_(0.1 + 0.9 * torch.rand(t.shape, generator=g))
        elif t.ndim >= 2 and not any(s in name for s in ("token", "position", "pos_embed", "probe")):
            fan_in = t[0].numel()
            t.copy_(r / fan_in ** 0.5)
        elif t.ndim == 1:
            t.copy_(0.1 * r)
        else:  # cls / mask / probe tokens and position tables
            t.copy_(0.5 * r)
    return module


def build_randomized(cls, config, seed: int) -> torch.nn.Module:
    """``cls(config)`` built without its library's weight initialisation, then re-randomised by ``randomize_``.
    Every floating tensor but derived rotary frequencies is overwritten there, so skipping the initialisers (11 s
    for a full-size SigLIP on 2 cores) gives the same weights."""
    try:
        from transformers.initialization import no_init_weights  # transformers 5
    except ImportError:
        from transformers.modeling_utils import no_init_weights  # transformers 4
    with no_init_weights():
        model = cls(config)
    return randomize_(model.eval(), seed)


def dinov2_config(full: bool = True, **kw):
    from transformers import Dinov2Config

    if full:  # microsoft/rad-dino's config.json
        base = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4, patch_size=14,
                    image_size=518, layer_norm_eps=1e-6, hidden_act="gelu", layerscale_value=1.0, qkv_bias=True)
    else:
        base = dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=4, patch_size=14,
                    image_size=112, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True)
    base.update(kw)
    return Dinov2Config(**base)


def make_dinov2(folder: Path, *, full: bool = True, seed: int = 0, naming: str = "disk",
                preprocessor: dict | None = None, registers: int = 0) -> Path:
    """``naming='disk'``: ``save_pretrained`` (legacy key names); ``'memory'``: transformers-5 in-memory names.
    ``registers`` > 0: a ``Dinov2WithRegistersModel`` (facebook/dinov2-with-registers-* at full size)."""
    from safetensors.torch import save_file
    from transformers import Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    if registers:
        cfg = Dinov2WithRegistersConfig(**dinov2_config(full).to_dict() | {"num_register_tokens": registers})
        model = build_randomized(Dinov2WithRegistersModel, cfg, seed)
    else:
        model = build_randomized(Dinov2Model, dinov2_config(full), seed)
    folder.mkdir(parents=True, exist_ok=True)
    if naming == "disk":
        model.save_pretrained(folder)
    else:
        model.config.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


RAD_DINO_PREPROCESSOR = {
    "image_processor_type": "BitImageProcessor", "do_resize": True, "size": {"shortest_edge": 518},
    "resample": 3, "do_center_crop": True, "crop_size": {"height": 518, "width": 518}, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5307, 0.5307, 0.5307],
    "image_std": [0.2583, 0.2583, 0.2583], "do_convert_rgb": True,
}

SIGLIP_PREPROCESSOR = {
    "image_processor_type": "SiglipImageProcessor", "do_resize": True, "size": {"height": 512, "width": 512},
    "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
}


def siglip_vision_kwargs(full: bool = True) -> dict:
    if full:  # SigLIP-L/16 at 512 (XraySigLIP's vision tower)
        return dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=512, patch_size=16, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh")
    return dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=64,
                patch_size=16, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh")


def make_siglip(folder: Path, *, full: bool = True, seed: int = 0, with_text: bool = True,
                preprocessor: dict | None = SIGLIP_PREPROCESSOR, vision: dict | None = None) -> Path:
    """``with_text``: a whole ``SiglipModel`` as XraySigLIP ships; otherwise a bare ``SiglipVisionModel``.
    ``vision`` replaces fields of the vision config."""
    from transformers import SiglipConfig, SiglipModel, SiglipVisionConfig, SiglipVisionModel

    if with_text:
        text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                    vocab_size=128, max_position_embeddings=16)
        config = SiglipConfig(text_config=text, vision_config=siglip_vision_kwargs(full) | (vision or {}))
        model = build_randomized(SiglipModel, config, seed)
    else:
        config = SiglipVisionConfig(**siglip_vision_kwargs(full) | (vision or {}))
        model = build_randomized(SiglipVisionModel, config, seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


def make_biomedclip(folder: Path, *, seed: int = 0, fmt: str = "bin", config: dict | None = None) -> Path:
    """open_clip's on-disk layout: ``open_clip_config.json`` + a state dict with ``visual.*`` and ``text.*`` keys."""
    from open_clip.timm_model import TimmModel

    config = config or BIOMEDCLIP_CONFIG
    vc, embed_dim = config["model_cfg"]["vision_cfg"], config["model_cfg"]["embed_dim"]
    visual = TimmModel(vc["timm_model_name"], embed_dim=embed_dim, image_size=vc["image_size"],
                       pool=vc["timm_pool"], proj=vc["timm_proj"], proj_bias=False, pretrained=False)
    randomize_(visual.eval(), seed)
    g = torch.Generator().manual_seed(seed + 1)
    sd = {f"visual.{k}": v.clone() for k, v in visual.state_dict().items()}
    # A stand-in for the BERT text tower and its projection: the converter must ignore everything but visual.*
    sd["text.transformer.embeddings.word_embeddings.weight"] = torch.randn(16, 8, generator=g)
    sd["text.proj.0.weight"] = torch.randn(8, 8, generator=g)
    sd["logit_scale"] = torch.tensor(4.6052)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    if fmt == "bin":
        torch.save(sd, folder / "open_clip_pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def make_dinov3(folder: Path, *, full: bool = True, seed: int = 0, naming: str = "disk", **kw) -> Path:
    """A ``DINOv3ViTModel``; full size is facebook/dinov3-vitb16-pretrain-lvd1689m's config (ViT-B/16, 4 registers,
    no key bias). ``naming='memory'``: the transformers-5 in-memory names (``model.layer.N``)."""
    from safetensors.torch import save_file
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    if full:
        base = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    patch_size=16, image_size=224, num_register_tokens=4, layer_norm_eps=1e-5, rope_theta=100.0,
                    key_bias=False, layerscale_value=1.0)
    else:
        base = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, patch_size=16,
                    image_size=64, num_register_tokens=2, layer_norm_eps=1e-5, rope_theta=100.0, key_bias=False)
    model = build_randomized(DINOv3ViTModel, DINOv3ViTConfig(**base | kw), seed)
    folder.mkdir(parents=True, exist_ok=True)
    if naming == "disk":
        model.save_pretrained(folder)
    else:
        model.config.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


CLIP_PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 224}, "resample": 3,
    "do_center_crop": True, "crop_size": {"height": 224, "width": 224}, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}


def clip_vision_kwargs(full: bool = True, **kw) -> dict:
    if full:  # openai/clip-vit-base-patch16's vision_config
        base = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=224, patch_size=16, layer_norm_eps=1e-5, hidden_act="quick_gelu")
    else:
        base = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=64,
                    patch_size=16, layer_norm_eps=1e-5, hidden_act="quick_gelu")
    return base | kw


def make_clip(folder: Path, *, full: bool = True, seed: int = 0, kind: str = "model", projection_dim: int = 512,
              preprocessor: dict | None = CLIP_PREPROCESSOR, **kw) -> Path:
    """transformers CLIP: ``kind`` "model" (a whole ``CLIPModel`` as openai/clip-vit-* ship, tiny text tower),
    "vision" (``CLIPVisionModel``) or "vision_proj" (``CLIPVisionModelWithProjection``)."""
    from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel,
                              CLIPVisionModelWithProjection)

    vision = clip_vision_kwargs(full, **kw)
    if kind == "model":
        text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                    vocab_size=128, max_position_embeddings=16)
        model = build_randomized(CLIPModel, CLIPConfig(text_config=text, vision_config=vision,
                                                        projection_dim=projection_dim), seed)
    elif kind == "vision":
        model = build_randomized(CLIPVisionModel, CLIPVisionConfig(**vision), seed)
    else:
        model = build_randomized(CLIPVisionModelWithProjection,
                                 CLIPVisionConfig(**vision, projection_dim=projection_dim), seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


def make_open_clip(folder: Path, *, full: bool = True, seed: int = 0, quick_gelu: bool = True, fmt: str = "bin",
                   vision_cfg: dict | None = None, embed_dim: int | None = None) -> Path:
    """open_clip's native ViT tower in open_clip's on-disk layout (``open_clip_config.json`` + a state dict with
    ``visual.*`` keys and text-tower keys of the same names: ``positional_embedding``, ``transformer.*``). Full size:
    OpenAI's ViT-B/32 (QuickGELU)."""
    from open_clip.model import _build_vision_tower

    vc = vision_cfg or (dict(image_size=224, layers=12, width=768, patch_size=32) if full
                        else dict(image_size=64, layers=2, width=64, head_width=32, patch_size=16))
    embed_dim = embed_dim or (512 if full else 48)
    visual = randomize_(_build_vision_tower(embed_dim, vc, quick_gelu=quick_gelu).eval(), seed)
    g = torch.Generator().manual_seed(seed + 1)
    sd = {f"visual.{k}": v.clone() for k, v in visual.state_dict().items()}
    # stand-ins for the text tower, whose key names repeat the image tower's without the prefix
    sd["positional_embedding"] = torch.randn(16, 8, generator=g)
    sd["transformer.resblocks.0.ln_1.weight"] = torch.randn(8, generator=g)
    sd["text_projection"] = torch.randn(8, 8, generator=g)
    sd["logit_scale"] = torch.tensor(4.6052)
    config = {"model_cfg": {"embed_dim": embed_dim, "quick_gelu": quick_gelu, "vision_cfg": vc,
                            "text_cfg": {"context_length": 16, "vocab_size": 128, "width": 8, "heads": 1,
                                         "layers": 1}},
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711]}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    if fmt == "bin":
        torch.save(sd, folder / "open_clip_pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "open_clip_model.safetensors"))
    return folder
