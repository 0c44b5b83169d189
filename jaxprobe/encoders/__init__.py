"""Flax NNX ports of the study's encoders: ``load(name_or_dir, **overrides)`` and the encoder registry.

>>> enc = load("rad_dino")                  # full-size RAD-DINO architecture, random weights (seeded)
>>> enc = load("rad_dino", depth=2, width=192, num_heads=3)   # reduced size for a CPU demo
>>> enc = load("/ckpts/rad_dino")           # a folder written by ``python -m convert``
>>> g, p = enc.embed(pixels)                # pixels: float32 [B, S, S, 3], already normalised
>>> names(), registry.get("rad_dino").display_name

JAX is imported only when ``Encoder``, ``build_module``, ``abstract_module`` or ``load`` is first used, so code
that only needs the registry (display names, config defaults) stays light.
"""
from __future__ import annotations

import importlib

from . import registry
from .config import ViTConfig
from .registry import names
from .spec import EncoderSpec

__all__ = ["Encoder", "EncoderSpec", "ViTConfig", "abstract_module", "build_module", "load", "names", "registry"]
_FROM_ENCODER = ("Encoder", "abstract_module", "build_module", "load")


def __getattr__(attr: str):
    if attr in _FROM_ENCODER:
        return getattr(importlib.import_module(".encoder", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def __dir__():
    return sorted(set(globals()) | set(_FROM_ENCODER))
