"""Synthetic chest-film phantoms in the real on-disk formats, so the pipeline runs end to end without data.

``make_synthetic(out_dir, n, seed, size)`` (or ``python -m jaxprobe.data.synth --out DIR``) writes:

* ``siim/``: a SIIM-ACR-style tree ``dicom-images-train/<study>/<series>/<SOPInstanceUID>.dcm`` with realistic
  headers (CR chest PA, Secondary Capture, UUID PatientID; some patients have several images); most files are
  8-bit MONOCHROME2 JPEG Baseline like the Kaggle files, some 16-bit (12 stored) MONOCHROME1 with a window;
  ``train-rle.csv`` (header ``ImageId, EncodedPixels``, stage-1 style ``" -1"``) with half of the images
  positive by default, some of them split over several (overlapping) rows.
* ``cardiomegaly/``: 8- and 16-bit PNGs, ``manifest.csv`` (image_id, path, patient_id, cardiomegaly, view) and
  ``chexmask.csv`` in CheXmask's format (``Image Index``, ``Dice RCA (Mean)``, ..., ``Left Lung``,
  ``Right Lung``, ``Heart``, ``Height``, ``Width``), a few rows below the 0.7 quality cut.

A phantom is a thorax of soft tissue with two lung fields (fine vessel texture), a heart whose width sets a
cardiothoracic ratio between ``ctr_range`` (label: CTR > 0.5), a spine, ribs, clavicles and noise. A
pneumothorax is a peripheral region of one lung with no lung texture, darker than lung, bounded medially by a
thin bright pleural line. Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives
the same files.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import sys
import uuid

import numpy as np
import pydicom
from PIL import Image

from ..errors import ConfigError, guarded
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

from .ctr import ctr as cardiothoracic_ratio
from .rle import encode_chexmask, encode_siim


# Bumped whenever the same arguments would draw different phantoms; caches are keyed by it.
# 2: half the SIIM films positive (was a quarter), deeper pneumothoraces (0.25-0.5 of the lung, was 0.12-0.3);
#    the cardiomegaly manifest has a view column (about 10 % AP).
GENERATOR_VERSION = 2


@dataclasses.dataclass(frozen=True)
class SyntheticPaths:
    root: str
    siim_root: str  # give to siim_records
    siim_csv: str
    cardiomegaly_manifest: str  # give to cardiomegaly_records with chexmask_csv
    chexmask_csv: str


@dataclasses.dataclass(frozen=True)
class Phantom:
    image: np.ndarray  # float [H, W] in [0, 1], bright = dense
    heart: np.ndarray  # bool [H, W]
    left_lung: np.ndarray  # patient's left = viewer's right
    right_lung: np.ndarray
    pneumothorax: np.ndarray


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Noise with features about 1/cells of the image, in [-1, 1]: coarse random grid, bicubic upsampled."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    up = np.asarray(Image.fromarray(coarse, mode="F").resize((width, height), Image.Resampling.BICUBIC))
    return up / (np.abs(up).max() + 1e-6)


def chest_phantom(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    target_ctr: float,
    pneumothorax: bool,
    noise: float = 0.015,
    rib_contrast: float = 0.09,
    pleural_line_contrast: float = 0.14,
    pneumothorax_depth: tuple[float, float] = (0.25, 0.5),
) -> Phantom:
    """One PA chest phantom with its masks; coordinates u (viewer's left -1 .. right +1) and v (top -1 .. +1)."""
    v, u = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    shift = rng.uniform(-0.04, 0.04)
    u = u - shift

    def ellipse(cu, cv, au, av, power=2.0):
        return (np.abs(u - cu) / au) ** power + (np.abs(v - cv) / av) ** power

    body = ellipse(0, 0.15, 0.92, 1.1) <= 1
    lung_v = rng.uniform(-0.1, -0.02)
    right_field = ellipse(-0.40, lung_v, 0.30, 0.62, 2.4) <= 1  # patient's right: viewer's left
    left_field = ellipse(0.40, lung_v + 0.02, 0.28, 0.60, 2.4) <= 1
    span = 1.38  # u-extent of the two lung fields together (-0.70 .. 0.68)
    heart_half = target_ctr * span / 2
    heart_u = rng.uniform(0.05, 0.12)
    heart_u = min(heart_u, 0.68 - heart_half - 0.01)  # keep the heart within the lung span
    heart = ellipse(heart_u, 0.32, heart_half, rng.uniform(0.24, 0.3)) <= 1
    right_lung, left_lung = right_field & ~heart, left_field & ~heart

    image = np.full((height, width), 0.03, dtype=np.float32)
    image[body] = 0.50
    lungs = right_lung | left_lung
    texture = 0.6 * _smooth_noise(rng, height, width, 24) + 0.4 * _smooth_noise(rng, height, width, 60)
    hilum = np.exp(-((np.abs(u) - 0.18) ** 2 / 0.05 + (v + 0.05) ** 2 / 0.08))
    image[lungs] = (0.20 + 0.05 * texture + 0.10 * hilum)[lungs]
    image[heart] = 0.58

    ptx = np.zeros_like(lungs)
    if pneumothorax:
        side = rng.choice([-1.0, 1.0])
        lung = left_lung if side > 0 else right_lung
        cu = 0.40 * side
        depth = rng.uniform(*pneumothorax_depth)  # how far the lung has collapsed away from the chest wall
        collapsed = ellipse(cu - side * depth * 0.35, lung_v + depth * 0.25, 0.30 * (1 - depth), 0.62 * (1 - depth * 0.5), 2.4)
        apical_lateral = (v < lung_v + rng.uniform(0.1, 0.4)) | (side * (u - cu) > 0.05)
        ptx = lung & (collapsed > 1) & apical_lateral
        pleural_line = lung & (collapsed <= 1) & (collapsed > 0.9) & apical_lateral  # edge of the collapsed lung
        image[ptx] = 0.09 + 0.01 * texture[ptx]  # air: no lung markings
        image[pleural_line] += pleural_line_contrast

    spine = body & (np.abs(u) < 0.08)
    image[spine] = np.maximum(image[spine], 0.60 + 0.04 * np.cos(v[spine] * 40))
    for side in (-1.0, 1.0):
        lateral = np.clip(side * u, 0, None)
        for k in range(10):
            centre = -0.78 + 0.155 * k + 0.35 * lateral**2
            rib = body & (side * u > 0.07) & (side * u < 0.86) & (np.abs(v - centre) < 0.022)
            image[rib] += rib_contrast
        clavicle = (side * u > 0.08) & (side * u < 0.62) & (np.abs(v - (-0.80 + 0.12 * lateral)) < 0.03)
        image[clavicle] += 0.12
    image += noise * rng.standard_normal(image.shape).astype(np.float32)
    return Phantom(np.clip(image, 0, 1), heart, left_lung, right_lung, ptx)


def _uid(seed: int, *parts) -> str:
    return generate_uid(entropy_srcs=[f"jaxprobe-synth-{seed}", *map(str, parts)])


def _write_dicom(path: str, pixels01: np.ndarray, *, sixteen_bit: bool, patient: dict, uids: dict, size_mm: float):
    height, width = pixels01.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uids["sop"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian if sixteen_bit else JPEGBaseline8Bit
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uids["sop"]
    ds.StudyDate, ds.StudyTime = "19010101", "000000.00"
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = "view: PA"
    ds.PatientName = patient["id"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = patient["sex"]
    ds.PatientAge = f"{patient['age']:03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = height, width
    ds.PixelSpacing = [round(size_mm / height, 6), round(size_mm / width, 6)]
    ds.PixelRepresentation = 0
    if sixteen_bit:  # a CR as a modality writes it: 12 bits stored, MONOCHROME1, a window in the header
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
        ds.WindowCenter, ds.WindowWidth = "2048", "4096"
        ds.PixelData = np.rint((1.0 - pixels01) * 4095).astype("<u2").tobytes()
    else:  # as the Kaggle files: 8-bit MONOCHROME2, lossy JPEG Baseline
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        buffer = io.BytesIO()
        Image.fromarray(np.rint(pixels01 * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=95)
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _patients(rng: np.random.Generator, n: int) -> list[int]:
    """Patient index of each of n images: most patients have one image, some two or three."""
    owner, patient = [], 0
    while len(owner) < n:
        owner += [patient] * int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
        patient += 1
    return owner[:n]


def _patient_info(rng: np.random.Generator) -> dict:
    return {"id": str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)), version=4)),
            "sex": str(rng.choice(["M", "F"])), "age": int(rng.integers(18, 90))}


def make_siim(out_dir: str, *, n: int, seed: int, size: int, positive_fraction: float = 0.5,
              sixteen_bit_fraction: float = 0.25, ctr_range=(0.35, 0.65),
              pneumothorax_depth: tuple[float, float] = (0.25, 0.5)) -> tuple[str, str]:
    """SIIM-ACR-format set; returns (root, csv path). ``pneumothorax_depth``: the range of how far a collapsed
    lung has pulled away from the chest wall (fraction of the lung's width): larger is more salient."""
    rng = np.random.default_rng([seed, 1])
    root = os.path.join(out_dir, "siim")
    n_pos = min(n, max(1, round(n * positive_fraction))) if n > 1 else 0
    positive = np.zeros(n, dtype=bool)
    positive[rng.permutation(n)[:n_pos]] = True
    owners = _patients(rng, n)
    people = [_patient_info(rng) for _ in range(max(owners) + 1)]
    rows = []
    for i in range(n):
        phantom = chest_phantom(rng, size, size, target_ctr=rng.uniform(*ctr_range), pneumothorax=bool(positive[i]),
                                pneumothorax_depth=pneumothorax_depth)
        uids = {k: _uid(seed, "siim", i, k) for k in ("study", "series", "sop")}
        path = os.path.join(root, "dicom-images-train", uids["study"], uids["series"], uids["sop"] + ".dcm")
        _write_dicom(path, phantom.image, sixteen_bit=bool(rng.random() < sixteen_bit_fraction),
                     patient=people[owners[i]], uids=uids, size_mm=430.0)
        if not positive[i]:
            rows.append((uids["sop"], "-1"))
        elif rng.random() < 0.5:  # annotated in two overlapping pieces, as several Kaggle rows are
            mask = phantom.pneumothorax
            rows_with = np.flatnonzero(mask.any(axis=1))
            cut = int(rows_with[len(rows_with) // 2])
            upper, lower = mask.copy(), mask.copy()
            upper[cut + 2 :] = False
            lower[: cut - 1] = False
            rows += [(uids["sop"], encode_siim(upper)), (uids["sop"], encode_siim(lower))]
        else:
            rows.append((uids["sop"], encode_siim(phantom.pneumothorax)))
    csv_path = os.path.join(root, "train-rle.csv")
    with open(csv_path, "w", newline="") as f:
        f.write("ImageId, EncodedPixels\n")
        for image_id, text in rows:
            f.write(f"{image_id}, {text}\n")
    return root, csv_path


def make_cardiomegaly(out_dir: str, *, n: int, seed: int, size: int, sixteen_bit_fraction: float = 0.3,
                      low_quality_fraction: float = 0.1, ctr_range=(0.35, 0.65), ap_fraction: float = 0.1
                      ) -> tuple[str, str]:
    """Manifest + CheXmask-format set; returns (manifest path, chexmask csv path)."""
    rng = np.random.default_rng([seed, 2])
    root = os.path.join(out_dir, "cardiomegaly")
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    height, width = size, int(round(size * 0.9))  # not square, like most radiographs
    owners = _patients(rng, n)
    manifest, masks = [], []
    for i in range(n):
        phantom = chest_phantom(rng, height, width, target_ctr=rng.uniform(*ctr_range), pneumothorax=False)
        image_id = f"{owners[i] + 1:08d}_{i:03d}.png"
        if rng.random() < sixteen_bit_fraction:
            Image.fromarray(np.rint(phantom.image * 65535).astype(np.uint16)).save(os.path.join(root, "images", image_id))
        else:
            Image.fromarray(np.rint(phantom.image * 255).astype(np.uint8)).save(os.path.join(root, "images", image_id))
        ratio = cardiothoracic_ratio(phantom.heart, phantom.left_lung, phantom.right_lung)
        view = "AP" if rng.random() < ap_fraction else "PA"  # the study's cohort is PA; data.views selects
        manifest.append((image_id, f"images/{image_id}", f"P{owners[i] + 1:05d}", int(ratio > 0.5), view))
        low = rng.random() < low_quality_fraction
        dice = rng.uniform(0.4, 0.69) if low else rng.uniform(0.75, 0.95)
        masks.append((image_id, f"{dice:.4f}", f"{min(1.0, dice + 0.03):.4f}", "",
                      encode_chexmask(phantom.left_lung), encode_chexmask(phantom.right_lung),
                      encode_chexmask(phantom.heart), height, width))
    manifest_path = os.path.join(root, "manifest.csv")
    with open(manifest_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "path", "patient_id", "cardiomegaly", "view"])
        writer.writerows(manifest)
    chexmask_path = os.path.join(root, "chexmask.csv")
    with open(chexmask_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Image Index", "Dice RCA (Mean)", "Dice RCA (Max)", "Landmarks", "Left Lung", "Right Lung",
                         "Heart", "Height", "Width"])
        writer.writerows(masks)
    return manifest_path, chexmask_path


def make_synthetic(out_dir: str | os.PathLike, n: int = 40, seed: int = 0, size: int = 256, *,
                   positive_fraction: float = 0.5, pneumothorax_depth: tuple[float, float] = (0.25, 0.5)
                   ) -> SyntheticPaths:
    """Write both synthetic sets (n images each, size x size SIIM films) under out_dir and return their paths."""
    if n < 2:
        raise ConfigError(f"n must be at least 2 (a positive and a negative), got {n}")
    if size < 64:
        raise ConfigError(f"size must be at least 64 pixels for the anatomy to be drawn, got {size}")
    out_dir = os.path.abspath(os.fspath(out_dir))
    if not 0 < positive_fraction < 1:
        raise ConfigError(f"positive_fraction must be between 0 and 1, got {positive_fraction}")
    low, high = pneumothorax_depth
    if not 0 < low <= high < 0.9:
        raise ConfigError(f"pneumothorax_depth must be (low, high) with 0 < low <= high < 0.9, got {pneumothorax_depth}")
    siim_root, siim_csv = make_siim(out_dir, n=n, seed=seed, size=size, positive_fraction=positive_fraction,
                                    pneumothorax_depth=(low, high))
    manifest, chexmask = make_cardiomegaly(out_dir, n=n, seed=seed, size=size)
    return SyntheticPaths(out_dir, siim_root, siim_csv, manifest, chexmask)


def main(argv=None) -> int:
    return guarded(lambda: _main(argv))


def _main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxprobe.data.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=40, help="images per set (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256, help="SIIM film rows and columns (default 256; real: 1024)")
    args = parser.parse_args(argv)
    paths = make_synthetic(args.out, n=args.n, seed=args.seed, size=args.size)
    for field in dataclasses.fields(paths):
        print(f"{field.name}: {getattr(paths, field.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
