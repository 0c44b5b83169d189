"""The record: one image with its label, patient and (compact) masks, as every later stage consumes it."""
from __future__ import annotations

import dataclasses

import numpy as np

from . import rle as rle_codecs
from .errors import DataError


def read_mask_image(path: str, height: int, width: int) -> np.ndarray:
    """A mask image (nonzero = foreground) of the image's size, as bool [height, width]."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L")) > 0
    except OSError as e:
        raise DataError(path, f"cannot read mask image: {e}") from None
    if mask.shape != (height, width):
        raise DataError(path, f"mask is {mask.shape[0]}x{mask.shape[1]}, its image {height}x{width}")
    return mask


_DECODERS = {
    "siim": lambda text, h, w: rle_codecs.decode_siim(text, h, w),
    "chexmask": lambda text, h, w: rle_codecs.decode_chexmask(text, h, w),
    "mask_image": read_mask_image,  # the "RLE string" is a mask image's path (user CSV cohorts)
}


@dataclasses.dataclass(frozen=True, slots=True)  # slots: 10,000+ records, no per-instance dict
class Record:
    """One radiograph.

    source: where it came from, e.g. ``"siim_acr"`` or ``"cardiomegaly"``.
    image_id: unique within the source (SIIM: the SOPInstanceUID / file stem; manifests: their id column).
    path: absolute path of the image file (DICOM, PNG or JPEG), readable by ``read_image``.
    patient_id: the unit of the train/val/test split (DICOM PatientID, or the manifest's patient column).
    label: 1 = finding present (pneumothorax, cardiomegaly), 0 = absent.
    height, width: the image's rows and columns; masks decode to this shape.
    rle_format: ``"siim"``, ``"chexmask"`` or ``"mask_image"`` (paths of mask images): how the strings in ``masks``
      are encoded ("" when no masks).
    masks: ``((structure, (rle, ...)), ...)``; several RLE rows of one structure are OR-ed when decoded.
      SIIM: ``("pneumothorax", rows)`` (no rows for a negative). Cardiomegaly: ``"heart"``, ``"left_lung"``,
      ``"right_lung"``, one row each. Kept as strings so that 10,000+ records stay small in memory.
    ctr: cardiothoracic ratio from the masks (``jaxprobe.data.ctr``), ``None`` where no heart mask exists.
    value: a regression target given with the image (user CSV cohorts), ``None`` elsewhere.
    """

    source: str
    image_id: str
    path: str
    patient_id: str
    label: int
    height: int
    width: int
    rle_format: str = ""
    masks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ctr: float | None = None
    value: float | None = None

    @staticmethod
    def decoder(rle_format: str):
        """(text, height, width) -> bool mask for the strings of ``rle_format``."""
        return _DECODERS[rle_format]

    @property
    def mask_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.masks)

    def mask(self, name: str | None = None) -> np.ndarray:
        """Decode one structure's mask as bool [height, width] (the OR of its RLE rows).

        ``name`` may be omitted when the record has exactly one structure (SIIM's pneumothorax). A SIIM
        negative decodes to an all-False mask.
        """
        if name is None:
            if len(self.masks) != 1:
                raise KeyError(f"{self.image_id}: record has masks {self.mask_names}; name one")
            name = self.masks[0][0]
        rows = dict(self.masks).get(name)
        if rows is None:
            raise KeyError(f"{self.image_id}: no mask {name!r}; this record has {self.mask_names}")
        decode = self.decoder(self.rle_format)
        out = np.zeros((self.height, self.width), dtype=bool)
        for text in rows:
            out |= decode(text, self.height, self.width)
        return out
