"""Conversion of original PyTorch checkpoints into jaxprobe's Flax encoders, on the library side (the ``convert``
folder at the top level is only the script users run).

One module per encoder family, named like the family (``dinov2``, ``dinov3``, ``siglip``, ``clip``, ``open_clip``,
``timm_vit``), each with ``read_source(src, name, default_spec)`` (architecture, spec and state dict from the user's files), ``rules(config)``
(one Flax parameter <- PyTorch tensors), ``ignore(key)`` (tensors not ported) and ``reference(src)`` (the original
module, for the parity check) and, for the family commands, ``DEFAULT_SPEC`` (the processor's defaults); ``hf``
reads the folders, ``hub`` resolves Hugging Face hub ids, ``rules`` applies the key maps, ``pipeline`` converts as a
registry entry or a family, ``parity`` checks the port.
"""
from jaxprobe.errors import ConversionError

from .parity import DEFAULT_TOLERANCE, verify
from .pipeline import convert, convert_params

__all__ = ["ConversionError", "DEFAULT_TOLERANCE", "convert", "convert_params", "verify"]
