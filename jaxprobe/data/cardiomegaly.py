"""Cardiomegaly: a manifest of labelled images joined with CheXmask heart and lung masks -> records with CTR.

The study's cohort is private; the public stand-in is any manifest CSV with an image id, an image path, a
patient id and a 0/1 cardiomegaly label, joined on the image id with a CheXmask CSV (``Heart``, ``Left Lung``,
``Right Lung`` RLE; ``Height``/``Width``; ``Dice RCA (Mean)``). ``nih_cardiomegaly_records`` builds that
manifest from NIH ChestX-ray14's ``Data_Entry_2017.csv`` for CheXmask's ``ChestX-Ray8.csv``.

Rows are kept when ``Dice RCA (Mean) >= min_dice`` (0.7, the CheXmask authors' advice). A CheXmask
Height/Width that is the image's transposed (a known slip in some CheXmask sources) is detected against the
image file and reported; ``on_hw_swap`` decides whether such rows are left out (default) or decoded with the
image's own shape. Every row left out is counted in the log and listed in ``skipped_file`` when given.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Iterable, Literal, NamedTuple

from . import rle
from .ctr import ctr_from_columns
from .errors import BadItems, DataError, OnError
from .images import image_shape, verify_image
from .records import Record
from .tables import Every, header, read_rows

log = logging.getLogger("jaxprobe.data")

SOURCE = "cardiomegaly"
# CheXmask names its id column after the source data set: ChestX-ray8 (NIH), VinDr-CXR, CheXpert, MIMIC, PadChest.
CHEXMASK_ID_COLUMNS = ("Image Index", "image_id", "Path", "dicom_id", "ImageID")
# Record structure name -> CheXmask column.
STRUCTURES = (("heart", "Heart"), ("left_lung", "Left Lung"), ("right_lung", "Right Lung"))

HWSwapPolicy = Literal["skip", "image_shape"]


class ManifestEntry(NamedTuple):
    where: str  # file:line, for messages
    image_id: str
    path: str
    patient_id: str
    label: int
    view: str = ""  # the view position (PA, AP, ...) where the manifest says it; "" where it does not


_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


def parse_label(text: str, where: str) -> int:
    value = text.strip().lower()
    if value in _TRUE:
        return 1
    if value in _FALSE:
        return 0
    raise DataError(where, f"label {text!r}; expected 0/1 (or true/false, yes/no)")


def read_manifest(
    manifest_csv: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    image_id_column: str = "image_id",
    path_column: str = "path",
    patient_column: str = "patient_id",
    label_column: str = "cardiomegaly",
    view_column: str = "view",
    bad: BadItems | None = None,
) -> list[ManifestEntry]:
    """Manifest rows; relative paths resolve against ``image_root`` (default: the manifest's folder). An
    optional ``view_column`` gives each image's view position."""
    manifest_csv = os.fspath(manifest_csv)
    base = os.fspath(image_root) if image_root is not None else os.path.dirname(os.path.abspath(manifest_csv))
    entries, seen = [], {}
    columns = [image_id_column, path_column, patient_column, label_column]
    for line, row in read_rows(manifest_csv, columns):
        where = f"{manifest_csv}:{line}"
        try:
            for column in columns:
                if not row[column]:
                    raise DataError(where, f"empty {column!r}")
            image_id = row[image_id_column]
            if image_id in seen:
                raise DataError(where, f"image id {image_id} repeats line {seen[image_id]}")
            label = parse_label(row[label_column], where)
        except DataError as e:
            if bad is None:
                raise
            bad.bad(e)  # raise, or skip the row and list it (the data.on_error policy)
            continue
        seen[image_id] = line
        path = row[path_column] if os.path.isabs(row[path_column]) else os.path.join(base, row[path_column])
        entries.append(ManifestEntry(where, image_id, os.path.abspath(path), row[patient_column], label,
                                     row.get(view_column, "").upper()))
    return entries


def chexmask_id_column(chexmask_csv: str) -> str:
    names = header(chexmask_csv)
    found = [c for c in CHEXMASK_ID_COLUMNS if c in names]
    if not found:
        raise DataError(chexmask_csv, f"no image id column; expected one of {list(CHEXMASK_ID_COLUMNS)}, header {names}")
    return found[0]


def cardiomegaly_records(
    manifest_csv: str | os.PathLike,
    chexmask_csv: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    image_id_column: str = "image_id",
    path_column: str = "path",
    patient_column: str = "patient_id",
    label_column: str = "cardiomegaly",
    chexmask_id: str | None = None,
    dice_column: str = "Dice RCA (Mean)",
    min_dice: float = 0.7,
    on_hw_swap: HWSwapPolicy = "skip",
    on_error: OnError = "raise",
    skipped_file: str | os.PathLike | None = None,
    verify_pixels: bool = False,
    views: tuple[str, ...] = (),
) -> list[Record]:
    """Records of every manifest image that has a CheXmask row of sufficient quality, sorted by image id.

    ``views`` (e.g. ``("PA",)``) keeps the images of those view positions (the manifest's ``view`` column);
    empty keeps every image.

    ``verify_pixels=True`` decodes every kept image too, so undecodable files are raised or skipped here.
    """
    bad = BadItems(SOURCE, on_error, skipped_file)
    entries = read_manifest(manifest_csv, image_root=image_root, image_id_column=image_id_column,
                            path_column=path_column, patient_column=patient_column, label_column=label_column,
                            bad=bad)
    entries = select_views(entries, views, os.fspath(manifest_csv), bad)
    return join_chexmask(entries, chexmask_csv, chexmask_id=chexmask_id, dice_column=dice_column, min_dice=min_dice,
                         on_hw_swap=on_hw_swap, verify_pixels=verify_pixels, bad=bad)


def join_chexmask(
    entries: Iterable[ManifestEntry],
    chexmask_csv: str | os.PathLike,
    *,
    chexmask_id: str | None = None,
    dice_column: str = "Dice RCA (Mean)",
    min_dice: float = 0.7,
    on_hw_swap: HWSwapPolicy = "skip",
    on_error: OnError = "raise",
    skipped_file: str | os.PathLike | None = None,
    source: str = SOURCE,
    bad: BadItems | None = None,
    verify_pixels: bool = False,
) -> list[Record]:
    """Join manifest entries with CheXmask rows on the image id (streamed: the real CSVs are gigabytes).

    ``bad`` continues the report of an earlier step (the NIH adapter's missing images); otherwise one is
    made from ``on_error`` and ``skipped_file``.
    """
    if on_hw_swap not in ("skip", "image_shape"):
        raise ValueError(f"on_hw_swap must be 'skip' or 'image_shape', got {on_hw_swap!r}")
    chexmask_csv = os.fspath(chexmask_csv)
    bad = bad if bad is not None else BadItems(source, on_error, skipped_file)
    wanted = {e.image_id: e for e in entries}
    id_column = chexmask_id or chexmask_id_column(chexmask_csv)
    required = [id_column, dice_column, "Height", "Width"] + [column for _, column in STRUCTURES]
    rows: dict[str, tuple[int, dict[str, str]]] = {}
    progress = Every(10.0)
    for line, row in read_rows(chexmask_csv, required):
        if progress():
            log.info("%s: %d rows read, %d of %d images matched so far", chexmask_csv, line - 1, len(rows),
                     len(wanted))
        image_id = row[id_column]
        if image_id not in wanted:
            continue
        if image_id in rows:
            bad.bad(DataError(f"{chexmask_csv}:{line}", f"second CheXmask row for {image_id} (first at line {rows[image_id][0]})"))
            continue
        rows[image_id] = (line, row)

    records = []
    for done, image_id in enumerate(sorted(wanted)):
        if progress():
            log.info("%s: %d of %d images joined", chexmask_csv, done, len(wanted))
        entry = wanted[image_id]
        if image_id not in rows:
            bad.note("no_masks", entry.where, f"{image_id} has no row in {chexmask_csv}")
            continue
        line, row = rows[image_id]
        try:
            record = _record(entry, row, f"{chexmask_csv}:{line}", dice_column, min_dice, on_hw_swap, bad, source)
            if record is not None and verify_pixels:
                verify_image(record.path)
        except DataError as e:
            bad.bad(e)
            continue
        if record is not None:
            records.append(record)
    bad.finish()
    log.info("%s: %d images (%d with cardiomegaly) joined with %s", source, len(records),
             sum(r.label for r in records), chexmask_csv)
    return records


def _record(entry, row, where, dice_column, min_dice, on_hw_swap, bad, source) -> Record | None:
    try:
        dice = float(row[dice_column])
        size = float(row["Height"]), float(row["Width"])
    except ValueError:
        raise DataError(where, f"{dice_column!r}, Height and Width must be numbers, got "
                               f"{row[dice_column]!r}, {row['Height']!r}, {row['Width']!r}") from None
    if not all(math.isfinite(v) and v >= 1 and v == int(v) for v in size):  # 256.7 or inf: no image has that size
        raise DataError(where, f"Height and Width must be whole numbers of pixels, got {row['Height']!r}, "
                               f"{row['Width']!r}")
    height, width = int(size[0]), int(size[1])
    if math.isnan(dice) or dice < min_dice:
        bad.note("low_mask_quality", where, f"{entry.image_id}: {dice_column} {dice} < {min_dice}")
        return None
    image_hw = image_shape(entry.path)
    if (height, width) != image_hw:
        if (width, height) != image_hw:
            raise DataError(where, f"CheXmask Height x Width {height}x{width} differs from {entry.path} ({image_hw[0]}x{image_hw[1]})")
        if on_hw_swap == "skip":
            bad.note("height_width_swapped", where,
                     f"CheXmask Height x Width {height}x{width} is {entry.path} transposed; left out (on_hw_swap='skip')")
            return None
        bad.note("height_width_swapped", where,
                 f"CheXmask Height x Width {height}x{width} is {entry.path} transposed; decoded as {image_hw[0]}x{image_hw[1]}")
        height, width = image_hw
    spans = {}  # the CTR needs each structure's first and last column only, read from the runs
    for name, column in STRUCTURES:
        try:
            spans[name] = rle.chexmask_columns(row[column], height, width)
        except rle.RLEError as e:
            raise DataError(where, f"{column} of {entry.image_id}: {e}") from None
    if spans["heart"] is None:
        raise DataError(where, f"{entry.image_id}: empty Heart mask, CTR undefined")
    return Record(
        source=source,
        image_id=entry.image_id,
        path=entry.path,
        patient_id=entry.patient_id,
        label=entry.label,
        height=height,
        width=width,
        rle_format="chexmask",
        masks=tuple((name, (row[column],)) for name, column in STRUCTURES),
        ctr=ctr_from_columns(*(spans[name] for name, _ in STRUCTURES)),
    )


NIH_DATA_ENTRY_FILES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")


def nih_manifest(nih_root: str | os.PathLike, *, data_entry_csv: str | os.PathLike | None = None,
                 bad: BadItems | None = None) -> list[ManifestEntry]:
    """NIH ChestX-ray14 as manifest entries: label 1 when "Cardiomegaly" is among the Finding Labels.

    Images are found anywhere under ``nih_root`` (the download splits them over ``images_001/images`` ...).
    """
    nih_root = os.path.abspath(os.fspath(nih_root))
    if data_entry_csv is None:
        found = [os.path.join(nih_root, n) for n in NIH_DATA_ENTRY_FILES if os.path.isfile(os.path.join(nih_root, n))]
        if not found:
            raise DataError(nih_root, f"no NIH label file; expected one of {list(NIH_DATA_ENTRY_FILES)} (or pass data_entry_csv)")
        data_entry_csv = found[0]
    data_entry_csv = os.fspath(data_entry_csv)
    files = {}
    for directory, _, names in os.walk(nih_root):
        for name in names:
            if name.lower().endswith(".png"):
                files[name] = os.path.join(directory, name)
    entries = []
    for line, row in read_rows(data_entry_csv, ["Image Index", "Finding Labels", "Patient ID"]):
        where = f"{data_entry_csv}:{line}"
        image_id = row["Image Index"]
        if image_id not in files:
            if bad is not None:
                bad.note("label_without_image", where, f"{image_id} not found under {nih_root}")
            continue
        if not row["Patient ID"]:  # one patient "" would join unrelated images in one split group
            error = DataError(where, f"empty Patient ID for {image_id}")
            if bad is None:
                raise error
            bad.bad(error)
            continue
        findings = {f.strip() for f in row["Finding Labels"].split("|")}
        entries.append(ManifestEntry(where, image_id, files[image_id], row["Patient ID"],
                                     int("Cardiomegaly" in findings), row.get("View Position", "").upper()))
    return entries


def select_views(entries: list[ManifestEntry], views, where: str, bad: BadItems) -> list[ManifestEntry]:
    """The entries of the given view positions (all when ``views`` is empty); the others are noted in ``bad``
    (kind ``view_not_selected``) and the counts by view logged."""
    views = tuple(v.upper() for v in views)
    if not views:
        return entries
    unknown = [e for e in entries if not e.view]
    if unknown:
        raise DataError(unknown[0].where, f"no view position for {len(unknown)} image(s) (a 'view' column, or NIH's "
                                          f"'View Position'), so data.views={views} cannot be applied; set "
                                          "data.views=() to keep every image")
    kept = [e for e in entries if e.view in views]
    for e in entries:
        if e.view not in views:
            bad.note("view_not_selected", e.where, f"{e.image_id} is {e.view}; data.views keeps {'/'.join(views)}")
    counts = {}
    for e in entries:
        counts[e.view] = counts.get(e.view, 0) + 1
    log.info("%s: views %s kept %d of %d images (by view: %s)", where, "/".join(views), len(kept), len(entries),
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return kept


def nih_cardiomegaly_records(
    nih_root: str | os.PathLike,
    chexmask_csv: str | os.PathLike,
    *,
    data_entry_csv: str | os.PathLike | None = None,
    on_error: OnError = "raise",
    skipped_file: str | os.PathLike | None = None,
    views: tuple[str, ...] = (),
    **join_options,
) -> list[Record]:
    """NIH ChestX-ray14 + CheXmask ``ChestX-Ray8.csv`` (id column ``Image Index``) -> cardiomegaly records."""
    bad = BadItems(SOURCE, on_error, skipped_file)
    entries = select_views(nih_manifest(nih_root, data_entry_csv=data_entry_csv, bad=bad), views, os.fspath(nih_root),
                           bad)
    return join_chexmask(entries, chexmask_csv, bad=bad, **join_options)
