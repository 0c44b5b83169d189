"""The encoder registry: one entry per encoder, looked up by name by configs, results, report and converters.

An entry names its family (module class and conversion rules, see ``families``), its display name, where its
real weights come from, and its full-size architecture and preprocessing. Those defaults build randomly
initialised encoders and are the converters' fallbacks when a source folder has no preprocessing file; a
converted checkpoint carries its own architecture and spec in ``encoder.json``. The study's three encoders are
registered here (sources: shared/reference/encoders.md); adding an encoder of an existing family is one
``register(EncoderEntry(...))``. Free of JAX, so results and reports can ask for display names cheaply.
"""
from __future__ import annotations

import dataclasses

from jaxprobe.errors import ConfigError

from . import families
from .config import ViTConfig
from .spec import EncoderSpec

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class EncoderEntry:
    name: str  # what configs and the command line use: ``load(name)``, ``python -m convert NAME``
    display_name: str  # tables and figures
    family: str  # a name in ``families``
    config: ViTConfig  # full-size architecture
    spec: EncoderSpec  # full-size preprocessing
    weights: str = ""  # where the real weights come from (a Hugging Face hub id); informational
    description: str = ""

    def __post_init__(self):
        families.get(self.family)  # an unknown family is refused at registration, not at first use
        if self.config.family != self.family or self.spec.family != self.family:
            raise ConfigError(f"encoder {self.name!r}: family {self.family!r} but config.family "
                              f"{self.config.family!r} and spec.family {self.spec.family!r}")


_ENTRIES: dict[str, EncoderEntry] = {}


def register(entry: EncoderEntry, *, replace: bool = False) -> EncoderEntry:
    if entry.name in families.names():
        raise ConfigError(f"encoder name {entry.name!r} is an encoder family's name; choose another")
    if entry.name in _ENTRIES and not replace:
        raise ConfigError(f"encoder {entry.name!r} is already registered (pass replace=True to redefine it)")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> EncoderEntry:
    """Remove an entry (a test's or a notebook's temporary one); returns it."""
    return _ENTRIES.pop(get(name).name)


def get(name: str) -> EncoderEntry:
    if name not in _ENTRIES:
        raise ConfigError(f"unknown encoder {name!r}; expected one of {list(_ENTRIES)}")
    return _ENTRIES[name]


def names() -> tuple[str, ...]:
    """Every registered encoder, in registration order (the study's three first)."""
    return tuple(_ENTRIES)


def display_name(name: str) -> str:
    """The registered display name; any other name (e.g. a user's model in a predictions file) as it is."""
    entry = _ENTRIES.get(name)
    return entry.display_name if entry else name


STUDY_ENTRIES = (
    EncoderEntry(
        "rad_dino", "RAD-DINO", "dinov2",
        ViTConfig("dinov2", 518, 14, 768, 12, 12, 3072, 1e-6, gelu_approximate=False, layerscale=True,
                  class_token=True, pool="cls", pos_interp="torch_bicubic"),
        EncoderSpec("dinov2", 518, 14, (0.5307,) * 3, (0.2583,) * 3, "shortest_edge_center_crop", 768, 768),
        weights="microsoft/rad-dino",
        description="Dinov2Model, ViT-B/14 at 518, LayerScale, exact GELU",
    ),
    EncoderEntry(
        "chexagent", "CheXagent", "siglip",
        ViTConfig("siglip", 512, 16, 1024, 24, 16, 4096, 1e-6, gelu_approximate=True, class_token=False,
                  pool="map", pos_interp="torch_bicubic"),
        EncoderSpec("siglip", 512, 16, (0.5,) * 3, (0.5,) * 3, "direct", 1024, 1024),
        weights="StanfordAIMI/XraySigLIP__vit-l-16-siglip-384__webli",
        description="CheXagent's vision tower: SigLIP-L/16 at 512 with the attention-pooling (MAP) head",
    ),
    EncoderEntry(
        "biomedclip", "BiomedCLIP", "timm_vit",
        ViTConfig("timm_vit", 224, 16, 768, 12, 12, 3072, 1e-6, gelu_approximate=False, class_token=True,
                  pool="cls", proj_dim=512, pos_interp="torch_bicubic_aa"),
        EncoderSpec("timm_vit", 224, 16, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, "shortest_edge_center_crop", 512, 768),
        weights="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        description="open_clip image tower: timm ViT-B/16 + bias-free linear projection 768->512",
    ),
)
STUDY_NAMES = tuple(e.name for e in STUDY_ENTRIES)  # the study's encoders, whatever else is registered later

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Encoders beyond the study, one per newer family; the architecture and preprocessing follow each hub repo's
# config.json and preprocessor files (a converted folder carries its own, read from the files). Entry names never
# equal a family name: ``python -m convert dinov3`` is the family's converter, ``dinov3_vitb16`` this entry.
MORE_ENTRIES = (
    EncoderEntry(
        "medsiglip", "MedSigLIP", "siglip",
        ViTConfig("siglip", 448, 14, 1152, 27, 16, 4304, 1e-6, gelu_approximate=True, class_token=False, pool="map",
                  pos_interp="torch_bicubic"),
        EncoderSpec("siglip", 448, 14, (0.5,) * 3, (0.5,) * 3, "direct", 1152, 1152),
        weights="google/medsiglip-448",
        description="SigLIP so400m/14 at 448 (a full SiglipModel; the vision tower's MAP-head pooler_output)",
    ),
    EncoderEntry(
        "dinov2_reg_vitb14", "DINOv2-reg", "dinov2",
        ViTConfig("dinov2", 518, 14, 768, 12, 12, 3072, 1e-6, layerscale=True, class_token=True, pool="cls",
                  pos_interp="torch_bicubic_aa", registers=4),
        EncoderSpec("dinov2", 224, 14, IMAGENET_MEAN, IMAGENET_STD, "shortest_edge_center_crop", 768, 768),
        weights="facebook/dinov2-with-registers-base",
        description="Dinov2WithRegistersModel, ViT-B/14 + 4 registers, pooler_output = final-normed CLS",
    ),
    EncoderEntry(
        "dinov3_vitb16", "DINOv3", "dinov3",
        ViTConfig("dinov3", 224, 16, 768, 12, 12, 3072, 1e-5, layerscale=True, class_token=True, pool="cls",
                  registers=4, rope_theta=100.0),
        EncoderSpec("dinov3", 224, 16, IMAGENET_MEAN, IMAGENET_STD, "direct", 768, 768, resample="bilinear"),
        weights="facebook/dinov3-vitb16-pretrain-lvd1689m",
        description="DINOv3ViTModel, ViT-B/16, 2-D RoPE, 4 registers, pooler_output = final-normed CLS",
    ),
    EncoderEntry(
        "clip_vitb16", "CLIP", "clip",
        ViTConfig("clip", 224, 16, 768, 12, 12, 3072, 1e-5, quick_gelu=True, class_token=True, pool="cls",
                  proj_dim=512, pos_interp="torch_bicubic", pre_norm=True, norm_patches=False),
        EncoderSpec("clip", 224, 16, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, "shortest_edge_center_crop", 512, 768),
        weights="openai/clip-vit-base-patch16",
        description="transformers CLIP ViT-B/16 (QuickGELU): get_image_features, last_hidden_state patches",
    ),
    EncoderEntry(
        "openclip_vitb32", "OpenCLIP", "open_clip",
        ViTConfig("open_clip", 224, 32, 768, 12, 12, 3072, 1e-5, class_token=True, pool="cls", proj_dim=512,
                  pos_interp="torch_bicubic_aa", pre_norm=True),
        EncoderSpec("open_clip", 224, 32, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, "shortest_edge_center_crop", 512, 768),
        weights="laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        description="open_clip native ViT-B/32: encode_image, ln_post patch tokens",
    ),
)

for _entry in STUDY_ENTRIES + MORE_ENTRIES:
    register(_entry)
