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

for _entry in STUDY_ENTRIES:
    register(_entry)
