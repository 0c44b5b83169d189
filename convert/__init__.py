"""Port PyTorch checkpoints of the study's encoders to Flax and prove parity with the original code.

``python -m convert {rad_dino|chexagent|biomedclip} --src PATH --out DIR`` and
``python -m convert verify --ckpt DIR --src PATH``. Each family module exposes ``read_source(src)`` (architecture,
spec and state dict from the user's files), ``rules(config)`` (the key map) and ``reference(src)`` (the
original PyTorch module, for the parity check).
"""
from .mapping import ConversionError
from .pipeline import FAMILIES, convert, verify

__all__ = ["ConversionError", "FAMILIES", "convert", "verify"]
