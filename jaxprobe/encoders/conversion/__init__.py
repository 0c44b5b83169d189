"""Conversion of original PyTorch checkpoints into jaxprobe's Flax encoders, on the library side (the ``convert``
folder at the top level is only the script users run).

One module per encoder family, named like the family module (``dinov2``, ``siglip``, ``timm_vit``), each with
``read_source(src, name, default_spec)`` (architecture, spec and state dict from the user's files), ``rules(config)``
(one Flax parameter <- PyTorch tensors), ``ignore(key)`` (tensors not ported) and ``reference(src)`` (the original
module, for the parity check); ``hf`` reads the folders, ``rules`` applies the key maps, ``pipeline`` converts an
entry of the registry, ``parity`` checks the port.
"""
from jaxprobe.errors import ConversionError

from .parity import DEFAULT_TOLERANCE, verify
from .pipeline import convert, convert_params

__all__ = ["ConversionError", "DEFAULT_TOLERANCE", "convert", "convert_params", "verify"]
