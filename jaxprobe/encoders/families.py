"""Encoder families by name: each family's Flax module class and its conversion module, both imported on demand.

A family is an architecture with one reference implementation (transformers' ``Dinov2Model`` and
``Dinov2WithRegistersModel``, ``DINOv3ViTModel``, ``SiglipVisionModel``, ``CLIPVisionModel``; open_clip's timm ViT
and its native ``VisionTransformer``); encoder entries (``registry``) name a family, and ``encoder.json`` records it, so the right
module and converter are found from the family alone. Nothing here imports JAX until a class is asked for.
"""
from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from jaxprobe.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Family:
    """``module`` is ``"package.module:ClassName"``; ``conversion`` a module with ``read_source``, ``rules``,
    ``ignore`` and ``reference`` (see ``jaxprobe.encoders.conversion``)."""

    name: str
    module: str
    conversion: str

    def module_class(self) -> type:
        """The Flax NNX module class, constructed as ``cls(config, dtype=..., rngs=...)``."""
        path, _, attr = self.module.partition(":")
        return getattr(importlib.import_module(path), attr)

    def converter(self) -> ModuleType:
        return importlib.import_module(self.conversion)


_FAMILIES: dict[str, Family] = {}


def register(family: Family, *, replace: bool = False) -> Family:
    if family.name in _FAMILIES and not replace:
        raise ConfigError(f"encoder family {family.name!r} is already registered (pass replace=True to redefine it)")
    _FAMILIES[family.name] = family
    return family


def get(name: str) -> Family:
    if name not in _FAMILIES:
        raise ConfigError(f"unknown encoder family {name!r}; expected one of {sorted(_FAMILIES)}")
    return _FAMILIES[name]


def names() -> tuple[str, ...]:
    return tuple(_FAMILIES)


for _name, _module in (("dinov2", "dinov2:Dinov2Encoder"), ("dinov3", "dinov3:Dinov3Encoder"),
                       ("siglip", "siglip:SiglipEncoder"), ("timm_vit", "timm_vit:TimmViTEncoder"),
                       ("clip", "clip:ClipEncoder"), ("open_clip", "clip:ClipEncoder")):
    register(Family(_name, f"jaxprobe.encoders.{_module}", f"jaxprobe.encoders.conversion.{_name}"))
