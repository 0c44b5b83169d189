"""A user's own cohort from one CSV: one row per image with its patient and a label, a value or a mask.

Columns (names are settings, ``data.table.*`` in the configs):

- ``image``: the image file (DICOM, PNG or JPEG), relative to the CSV's folder or absolute;
- ``patient``: the patient id (the unit of the split);
- ``id`` (optional): the image id; without it, the image path relative to the CSV's folder;
- targets, any of: ``label`` (0/1, binary classification), ``value`` (a number, regression), ``mask`` (binary
  segmentation: a mask image path, nonzero = foreground, or an RLE string in the SIIM or CheXmask convention,
  ``mask_format``); an empty mask cell is an empty mask;
- ``split`` (optional): train / val / test per row, replacing the seeded patient-level split.

Bad rows (missing or unreadable image, empty patient id, a label that is not 0/1, a mask of another size) follow
the raise/skip policy of ``jaxprobe.data.errors``: the first one stops the load naming the file and line, or
with ``on_error="skip"`` each is left out and listed.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os

import numpy as np
from PIL import Image

from . import rle
from .cardiomegaly import parse_label
from .errors import BadItems, DataError, OnError
from .images import image_shape
from .records import Record
from .tables import header, read_rows

log = logging.getLogger("jaxprobe.data")

SOURCE = "csv"
MASK_FORMATS = {"image": "mask_image", "siim_rle": "siim", "chexmask_rle": "chexmask"}


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which CSV column holds what ("" = the table has no such column)."""

    image: str = "image"
    patient: str = "patient_id"
    id: str = ""
    label: str = "label"
    value: str = "value"
    mask: str = "mask"
    mask_format: str = "image"  # "image" | "siim_rle" | "chexmask_rle"
    split: str = ""


def csv_records(path: str | os.PathLike, columns: Columns = Columns(), *, target: str,
                on_error: OnError = "raise", skipped_file: str | os.PathLike | None = None) -> list[Record]:
    """Records of every good row of the cohort CSV at ``path`` for ``target`` ("label", "value" or "mask"),
    sorted by image id."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise DataError(path, "cohort CSV not found")
    if columns.mask_format not in MASK_FORMATS:
        raise DataError(path, f"mask_format {columns.mask_format!r}; expected one of {sorted(MASK_FORMATS)}")
    target_column = {"label": columns.label, "value": columns.value, "mask": columns.mask}.get(target)
    if not target_column:
        raise DataError(path, f"target {target!r} has no column; expected label, value or mask")
    names = header(path)
    required = [columns.image, columns.patient, target_column] + [c for c in (columns.id, columns.split) if c]
    missing = [c for c in required if c not in names]
    if missing:
        raise DataError(path, f"missing column(s) {missing} for target {target!r}; the header has {names}")
    base = os.path.dirname(path)
    bad = BadItems(SOURCE, on_error, skipped_file)
    records, seen = [], {}
    for line, row in read_rows(path, required):
        where = f"{path}:{line}"
        try:
            record = _record(row, where, base, columns, target, target_column)
        except DataError as e:
            bad.bad(e)
            continue
        if record.image_id in seen:
            bad.bad(DataError(where, f"image id {record.image_id} repeats line {seen[record.image_id]}"))
            continue
        seen[record.image_id] = line
        records.append(record)
    bad.finish()
    log.info("%s: %d images (%s from column %r) from %s", SOURCE, len(records), target, target_column, path)
    return sorted(records, key=lambda r: r.image_id)


def _record(row: dict, where: str, base: str, columns: Columns, target: str, target_column: str) -> Record:
    cell = row[columns.image]
    if not cell:
        raise DataError(where, f"empty {columns.image!r}")
    image = cell if os.path.isabs(cell) else os.path.join(base, cell)
    if not os.path.isfile(image):
        raise DataError(where, f"image {image} not found")
    patient = row[columns.patient]
    if not patient:
        raise DataError(where, f"empty {columns.patient!r}: every image needs its patient for the split")
    image_id = image_id_of(row, base, columns)
    if not image_id:
        raise DataError(where, f"empty {columns.id!r}")
    height, width = image_shape(image)
    label, value, masks, rle_format = 0, None, (), ""
    text = row[target_column]
    if target == "label":
        label = parse_label(text, where)
    elif target == "value":
        try:
            value = float(text)
        except ValueError:
            raise DataError(where, f"{target_column!r} is {text!r}; expected a number") from None
        if not math.isfinite(value):
            raise DataError(where, f"{target_column!r} is {text!r}; expected a finite number")
    else:
        rle_format = MASK_FORMATS[columns.mask_format]
        if text and columns.mask_format == "image":
            text = text if os.path.isabs(text) else os.path.join(base, text)
        mask = _decode(text, rle_format, height, width, where)
        label = int(mask.any())
        masks = (("mask", (text,) if text else ()),)
    return Record(source=SOURCE, image_id=image_id, path=image, patient_id=patient, label=label, height=height,
                  width=width, rle_format=rle_format, masks=masks, value=value)


def image_id_of(row: dict, base: str, columns: Columns) -> str:
    """The id column's value, or the image's path relative to the CSV's folder."""
    if columns.id:
        return row[columns.id]
    cell = row[columns.image]
    return os.path.relpath(cell if os.path.isabs(cell) else os.path.join(base, cell), base)


def csv_splits(path: str | os.PathLike, columns: Columns, records) -> dict[str, str]:
    """image_id -> "train" | "val" | "test" from the cohort's split column, for the records that were kept."""
    from .splits import normalise_split_name

    path = os.path.abspath(os.fspath(path))
    base, kept = os.path.dirname(path), {r.image_id for r in records}
    out = {}
    for line, row in read_rows(path, [columns.image, columns.split]):
        image_id = image_id_of(row, base, columns)
        if image_id in kept:
            out[image_id] = normalise_split_name(row[columns.split], f"{path}:{line}")
    return out


def _decode(text: str, rle_format: str, height: int, width: int, where: str) -> np.ndarray:
    """Check the mask now, so a bad one is reported at load with its line, not during extraction."""
    if not text:
        return np.zeros((height, width), bool)
    try:
        return Record.decoder(rle_format)(text, height, width)
    except (rle.RLEError, DataError) as e:
        raise DataError(where, str(e)) from None


def write_phantom_cohort(out_dir: str | os.PathLike, *, n: int, seed: int, size: int) -> str:
    """The embedded default's CSV cohort: phantom radiographs as PNG with their heart masks as PNG, a
    cardiomegaly label (CTR > 0.5) and the CTR as value; returns the CSV's path."""
    from .ctr import ctr as cardiothoracic_ratio
    from .synth import chest_phantom

    rng = np.random.default_rng([seed, 3])
    out_dir = os.fspath(out_dir)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "masks"), exist_ok=True)
    rows = []
    for i in range(n):
        phantom = chest_phantom(rng, size, size, target_ctr=rng.uniform(0.35, 0.65), pneumothorax=False)
        name = f"img{i:04d}.png"
        Image.fromarray(np.rint(phantom.image * 255).astype(np.uint8)).save(os.path.join(out_dir, "images", name))
        Image.fromarray(phantom.heart.astype(np.uint8) * 255).save(os.path.join(out_dir, "masks", name))
        ratio = cardiothoracic_ratio(phantom.heart, phantom.left_lung, phantom.right_lung)
        rows.append((f"images/{name}", f"patient{i // 2:04d}", int(ratio > 0.5), f"{ratio:.6f}", f"masks/{name}"))
    path = os.path.join(out_dir, "cohort.csv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "patient_id", "label", "value", "mask"])
        writer.writerows(rows)
    return path
