"""Port PyTorch checkpoints of the study's encoders to Flax and prove parity with the original code.

``python -m convert {rad_dino|chexagent|biomedclip} --src PATH --out DIR`` and
``python -m convert verify --ckpt DIR --src PATH``. The rules, readers and parity check live in the library
(``jaxprobe.encoders.conversion``), so a run can convert an original folder on the fly; this folder is the
script users run.
"""
from jaxprobe.encoders.conversion import ConversionError, convert, verify

__all__ = ["ConversionError", "convert", "verify"]
