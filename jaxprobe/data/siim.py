"""SIIM-ACR Pneumothorax: a DICOM tree plus the RLE CSV -> one ``Record`` per labelled image.

Expected layout (the Kaggle download): ``ROOT/dicom-images-train/<study>/<series>/<SOPInstanceUID>.dcm`` (any
nesting works: the tree is walked and files are keyed by their stem) and the labels in ``ROOT/train-rle.csv``
(stage 1) or ``ROOT/stage_2_train.csv`` (stage 2): columns ``ImageId``, ``EncodedPixels`` (relative,
column-major RLE; ``-1`` = no pneumothorax; several rows of one image are OR-ed).

The patient id is the DICOM PatientID, read from the header without decoding pixels; masks decode with the
image's own Rows x Columns. Images without a label and labels without an image are reported (log and, with a
``skipped_file``, listed), never silently dropped.
"""
from __future__ import annotations

import logging
import os


from . import rle
from .errors import BadItems, DataError, OnError
from .images import read_dicom_header, verify_image
from .records import Record
from .splits import balanced
from .tables import Every, read_rows

log = logging.getLogger("jaxprobe.data")

SOURCE = "siim_acr"
LABEL_FILES = ("train-rle.csv", "stage_2_train.csv")
PAPER_STAGE1 = (10_675, 2_379)  # images, positives of the study's SIIM-ACR cohort (the stage-1 training labels)


def find_label_csv(root: str) -> str:
    found = [os.path.join(root, name) for name in LABEL_FILES if os.path.isfile(os.path.join(root, name))]
    if not found:
        raise DataError(root, f"no SIIM-ACR label file; expected one of {list(LABEL_FILES)} (or pass csv_path)")
    if len(found) > 1:
        raise DataError(root, f"both {found} present; pass csv_path to choose one")
    return found[0]


def find_dicoms(root: str, bad: BadItems) -> dict[str, str]:
    """Map file stem (the SOPInstanceUID in SIIM) -> path for every ``*.dcm`` under root."""
    paths: dict[str, str] = {}
    for directory, _, files in os.walk(root):
        for name in files:
            if not name.lower().endswith(".dcm"):
                continue
            stem, path = name[: -len(".dcm")], os.path.join(directory, name)
            if stem in paths:
                bad.bad(DataError(path, f"image id {stem} also at {paths[stem]}; file stems must be unique"))
                continue
            paths[stem] = path
    return paths


def read_labels(csv_path: str) -> dict[str, list[tuple[int, str]]]:
    """ImageId -> [(line, EncodedPixels), ...] with whitespace stripped from header and values."""
    labels: dict[str, list[tuple[int, str]]] = {}
    for line, row in read_rows(csv_path, ["ImageId", "EncodedPixels"]):
        if not row["ImageId"]:
            raise DataError(f"{csv_path}:{line}", "empty ImageId")
        labels.setdefault(row["ImageId"], []).append((line, row["EncodedPixels"]))
    return labels


def siim_records(
    root: str | os.PathLike,
    *,
    csv_path: str | os.PathLike | None = None,
    on_error: OnError = "raise",
    skipped_file: str | os.PathLike | None = None,
    verify_pixels: bool = False,
) -> list[Record]:
    """All labelled SIIM-ACR images under ``root`` as records sorted by image id.

    Bad items (unreadable or truncated DICOM, missing PatientID, malformed or contradictory RLE) raise a
    ``DataError`` naming the file or CSV line, or with ``on_error="skip"`` are left out and listed in
    ``skipped_file`` together with the unmatched images and labels. Headers are always checked;
    ``verify_pixels=True`` also decodes every image (about 10 ms each), catching corrupt compressed data here
    rather than at embedding time.
    """
    root = os.path.abspath(os.fspath(root))
    csv_path = os.fspath(csv_path) if csv_path is not None else find_label_csv(root)
    bad = BadItems(SOURCE, on_error, skipped_file)
    labels = read_labels(csv_path)
    dicoms = find_dicoms(root, bad)

    records = []
    progress = Every(10.0)
    for done, image_id in enumerate(sorted(labels)):
        if progress():
            log.info("%s: %d of %d labelled images checked", SOURCE, done, len(labels))
        if image_id not in dicoms:
            bad.note("label_without_image", image_id, f"{csv_path} labels it but no {image_id}.dcm is under {root}")
            continue
        try:
            record = _record(image_id, dicoms[image_id], labels[image_id], csv_path)
            if verify_pixels:
                verify_image(record.path)
            records.append(record)
        except DataError as e:
            bad.bad(e)
    for image_id in sorted(set(dicoms) - set(labels)):
        bad.note("image_without_label", dicoms[image_id], f"no row for {image_id} in {csv_path}")
    bad.finish()
    positives = sum(r.label for r in records)
    stage = {"train-rle.csv": "stage 1", "stage_2_train.csv": "stage 2"}.get(os.path.basename(csv_path), "labels")
    log.info("%s: %d images (%d positive) from %s, labels %s (%s); the paper's stage-1 cohort: %d images "
             "(%d positive)", SOURCE, len(records), positives, root, csv_path, stage, *PAPER_STAGE1)
    if stage == "stage 2":
        log.warning("%s: the stage-2 labels give a larger cohort than the paper's stage-1 counts; use "
                    "train-rle.csv (--config.data.csv) to match it", SOURCE)
    return records


def _record(image_id: str, path: str, rows: list[tuple[int, str]], csv_path: str) -> Record:
    ds = read_dicom_header(path)
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if not patient_id:
        raise DataError(path, "DICOM has no PatientID; it is needed for patient-level splits")
    height, width = int(ds.Rows), int(ds.Columns)
    negative = [line for line, text in rows if text in ("-1", "")]
    positive = [(line, text) for line, text in rows if text not in ("-1", "")]
    if negative and positive:
        raise DataError(
            f"{csv_path}:{negative[0]}", f"ImageId {image_id} is both -1 (no pneumothorax) and masked (line {positive[0][0]})"
        )
    for line, text in positive:  # validate now, so that a bad string is reported at load, with its line
        try:
            rle.decode_siim(text, height, width)
        except rle.RLEError as e:
            raise DataError(f"{csv_path}:{line}", f"ImageId {image_id}: {e}") from None
    return Record(
        source=SOURCE,
        image_id=image_id,
        path=path,
        patient_id=patient_id,
        label=int(bool(positive)),
        height=height,
        width=width,
        rle_format="siim",
        masks=(("pneumothorax", tuple(text for _, text in positive)),),
    )


def classification_set(records: list[Record], *, seed: int = 0) -> list[Record]:
    """Balanced classification set: every case of the rarer class (the positives, in SIIM-ACR) plus as many of
    the other drawn with ``seed`` (``jaxprobe.data.splits.balanced``), in image-id order."""
    ordered = sorted(records, key=lambda r: r.image_id)
    return [ordered[i] for i in balanced([r.label for r in ordered], seed)]


def segmentation_set(records: list[Record]) -> list[Record]:
    """Pneumothorax segmentation set: the positives (the study trains segmenters on positive cases only)."""
    return [r for r in records if r.label == 1]
