"""8-bit radiograph -> the pixels one encoder expects, following its ``EncoderSpec``.

Geometry is that of each model's own processor: ``shortest_edge_center_crop`` resizes the short side to S
(the long side to ``int(S * long / short)``, as transformers and torchvision compute it) and crops the centre
S x S; ``direct`` resizes to S x S ignoring the aspect ratio. Resampling is Pillow's (antialiased, as used
by the PIL pipelines the models were released with); grey is repeated to three channels, rescaled by
``spec.rescale`` and normalised by ``spec.mean``/``spec.std``.

Masks go through the same resize and crop (resampled as grey levels, then thresholded) so they stay aligned
with the image and come out binary.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from jaxprobe.encoders.spec import EncoderSpec

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _resample(name: str) -> Image.Resampling:
    try:
        return _RESAMPLE[name]
    except KeyError:
        raise ValueError(f"resample {name!r} unknown; expected one of {sorted(_RESAMPLE)}") from None


def geometry(height: int, width: int, spec: EncoderSpec) -> tuple[int, int, int, int]:
    """(resized_height, resized_width, crop_top, crop_left) that map an H x W image onto S x S."""
    size = spec.input_size
    if spec.resize == "direct":
        return size, size, 0, 0
    if spec.resize != "shortest_edge_center_crop":
        raise ValueError(f"EncoderSpec.resize {spec.resize!r}; expected 'shortest_edge_center_crop' or 'direct'")
    if height <= width:
        new_h, new_w = size, int(size * width / height)
    else:
        new_h, new_w = int(size * height / width), size
    return new_h, new_w, _crop_offset(new_h - size, spec), _crop_offset(new_w - size, spec)


def _crop_offset(excess: int, spec: EncoderSpec) -> int:
    # The timm/open_clip family is preprocessed by torchvision's CenterCrop, which rounds half an odd excess
    # (Python's round, half to even); transformers' processors (DINOv2, SigLIP) truncate it.
    if spec.family == "timm_vit":
        return int(round(excess / 2.0))
    return excess // 2


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{what} must be 2-D [H, W], got shape {image.shape}")
    return image


def _resize_crop(image_u8: np.ndarray, spec: EncoderSpec, resample: Image.Resampling) -> np.ndarray:
    height, width = image_u8.shape
    new_h, new_w, top, left = geometry(height, width, spec)
    pil = Image.fromarray(image_u8, mode=None)
    if (new_h, new_w) != (height, width):
        pil = pil.resize((new_w, new_h), resample)
    size = spec.input_size
    if (top, left, new_h, new_w) != (0, 0, size, size):
        pil = pil.crop((left, top, left + size, top + size))
    return np.asarray(pil)


def preprocess(image_u8: np.ndarray, spec: EncoderSpec) -> np.ndarray:
    """uint8 [H, W] -> float32 [S, S, 3], resized, cropped, rescaled and normalised as ``spec`` says."""
    image_u8 = _check_image(image_u8, "image")
    if image_u8.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (read it with read_image), got {image_u8.dtype}")
    grey = _resize_crop(image_u8, spec, _resample(spec.resample))
    # The resized image is still 8-bit, so every output value is one of 256 per channel: a table lookup
    # replaces three full-size float passes with the same float32 arithmetic done once per level.
    return _normalisation_table(spec)[grey]


def _normalisation_table(spec: EncoderSpec) -> np.ndarray:
    levels = np.arange(256, dtype=np.float32)[:, None]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (levels * np.float32(spec.rescale) - mean) / std


def preprocess_mask(
    mask: np.ndarray, spec: EncoderSpec, *, resample: str = "bilinear", threshold: float = 0.5
) -> np.ndarray:
    """bool [H, W] -> bool [S, S] on the same grid as ``preprocess`` of the image.

    The mask is resampled as a 0/255 grey image (``resample``) and kept where it reaches ``threshold``.
    """
    mask = _check_image(mask, "mask")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    grey = _resize_crop(mask.astype(bool).astype(np.uint8) * np.uint8(255), spec, _resample(resample))
    return grey >= threshold * 255.0


def preprocess_batch(images: Sequence[np.ndarray], spec: EncoderSpec) -> np.ndarray:
    """A list of uint8 [H_i, W_i] images (sizes may differ) -> float32 [B, S, S, 3]."""
    size = spec.input_size
    out = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = preprocess(image, spec)
    return out


def preprocess_mask_batch(masks: Sequence[np.ndarray], spec: EncoderSpec, **kwargs) -> np.ndarray:
    """A list of bool [H_i, W_i] masks -> bool [B, S, S]."""
    size = spec.input_size
    out = np.empty((len(masks), size, size), dtype=bool)
    for i, mask in enumerate(masks):
        out[i] = preprocess_mask(mask, spec, **kwargs)
    return out
