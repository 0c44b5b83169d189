"""Encoder names -> (module class, default architecture, preprocessing spec).

The defaults are the study's three encoders at full size (sources: shared/reference/encoders.md). A
converted checkpoint carries its own architecture and spec in ``encoder.json``; these are only used for
randomly initialised encoders and as the converters' fallbacks when a source folder has no preprocessor file.
"""
from __future__ import annotations

from .dinov2 import Dinov2Encoder
from .siglip import SiglipEncoder
from .spec import EncoderSpec
from .timm_vit import TimmViTEncoder
from .config import ViTConfig

MODULES = {"dinov2": Dinov2Encoder, "siglip": SiglipEncoder, "timm_vit": TimmViTEncoder}

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

DEFAULTS: dict[str, tuple[ViTConfig, EncoderSpec]] = {
    # microsoft/rad-dino: Dinov2Model, ViT-B/14 at 518, LayerScale, exact GELU.
    "rad_dino": (
        ViTConfig("dinov2", 518, 14, 768, 12, 12, 3072, 1e-6, gelu_approximate=False, layerscale=True,
                  class_token=True, pool="cls", pos_interp="torch_bicubic"),
        EncoderSpec("dinov2", 518, 14, (0.5307,) * 3, (0.2583,) * 3, "shortest_edge_center_crop", 768, 768),
    ),
    # StanfordAIMI/XraySigLIP__vit-l-16-siglip-384__webli vision tower: SigLIP-L/16 at 512, MAP head.
    "chexagent": (
        ViTConfig("siglip", 512, 16, 1024, 24, 16, 4096, 1e-6, gelu_approximate=True, class_token=False,
                  pool="map", pos_interp="torch_bicubic"),
        EncoderSpec("siglip", 512, 16, (0.5,) * 3, (0.5,) * 3, "direct", 1024, 1024),
    ),
    # microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 image tower: timm ViT-B/16 + linear 768->512.
    "biomedclip": (
        ViTConfig("timm_vit", 224, 16, 768, 12, 12, 3072, 1e-6, gelu_approximate=False, class_token=True,
                  pool="cls", proj_dim=512, pos_interp="torch_bicubic_aa"),
        EncoderSpec("timm_vit", 224, 16, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, "shortest_edge_center_crop", 512, 768),
    ),
}

FAMILY_OF_NAME = {name: cfg.family for name, (cfg, _) in DEFAULTS.items()}
NAME_OF_FAMILY = {family: name for name, family in FAMILY_OF_NAME.items()}
