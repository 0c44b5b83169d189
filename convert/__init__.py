"""Port PyTorch checkpoints to Flax and prove parity with the original code.

``python -m convert {rad_dino|chexagent|biomedclip|<entry>} --src PATH_OR_HUB_ID --out DIR`` (a registry entry),
``python -m convert {dinov2|dinov3|siglip|clip|open_clip} --src PATH_OR_HUB_ID --out DIR`` (a family) and
``python -m convert verify --ckpt DIR --src PATH_OR_HUB_ID``. The rules, readers and parity check live in the library
(``jaxprobe.encoders.conversion``), so a run can convert an original folder on the fly; this folder is the
script users run.
"""
from jaxprobe.encoders.conversion import ConversionError, convert, verify

__all__ = ["ConversionError", "convert", "verify"]
