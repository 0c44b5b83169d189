"""Radiographs on disk -> 8-bit grey ``uint8 [H, W]``, the input all three encoders' processors expect.

DICOM (pydicom 3): stored values -> modality LUT (rescale or LUT sequence) -> VOI LUT or window
(``voi`` picks which one; ``None`` keeps the full range) -> MONOCHROME1 inverted -> scaled to 8 bits from the
range the standard defines for the data (from BitsStored, the rescale and the LUT descriptors), never from the
array's dtype. PNG: 8-bit as is; 16-bit scaled in numpy, because Pillow's ``convert`` clips at 255 instead of
scaling. JPEG: through Pillow.

Every failure is a ``DataError`` that names the file.
"""
from __future__ import annotations

import logging
import os
import struct
from typing import Literal

import numpy as np
import pydicom
import pydicom.errors
from PIL import Image, UnidentifiedImageError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

from .errors import DataError

Scaling = Literal["range", "minmax"]

log = logging.getLogger(__name__)
_FALLBACKS_REPORTED: set[tuple[str, str]] = set()  # (plugin, transfer syntax) said once per process

# Transfer syntax UID -> packages that decode it (pydicom 3 plugin table); Pillow is a core
# dependency, so only the others are suggested.
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg (jaxprobe[dicom]) or python-gdcm",
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg (jaxprobe[dicom]) or python-gdcm",
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg (jaxprobe[dicom]) or python-gdcm",
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg (jaxprobe[dicom]) or python-gdcm",
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg (jaxprobe[dicom]), pyjpegls or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg (jaxprobe[dicom]), pyjpegls or python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg (jaxprobe[dicom]) or python-gdcm",
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg (jaxprobe[dicom]) or python-gdcm",
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg (jaxprobe[dicom])",
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg (jaxprobe[dicom])",
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg (jaxprobe[dicom])",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"


def _kind(path: str) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as e:
        raise DataError(path, f"cannot open: {e.strerror or e}") from None
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(_JPEG_SIGNATURE):
        return "jpeg"
    if path.lower().endswith((".dcm", ".dicom")) or "." not in os.path.basename(path):
        return "dicom"  # DICOM without the 128-byte preamble; dcmread decides
    raise DataError(path, "not a DICOM, PNG or JPEG file (unrecognised signature)")


def _last_line(error: Exception) -> str:
    """The last line of a decoder's report (pydicom lists each plugin's failure on a line of its own)."""
    return str(error).splitlines()[-1].strip()[:200]


def verify_image(path: str | os.PathLike) -> None:
    """Decode an image as a run would, and for a JPEG-compressed DICOM also check its stream with libjpeg
    (pylibjpeg, the ``dicom`` extra) where installed: Pillow decodes a stream with zeroed or damaged entropy-coded
    bytes to changed pixels without a word, libjpeg reports it. Raises DataError naming the file."""
    read_image(path)
    if not str(path).lower().endswith(".dcm"):
        return
    ds = pydicom.dcmread(path)
    ts = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) is not None else None
    if ts is None or not ts.is_compressed or "JPEG" not in ts.name or "2000" in ts.name:
        return
    try:
        from pydicom.pixels import get_decoder

        if "pylibjpeg" not in get_decoder(ts).available_plugins:
            return
        ds.pixel_array_options(decoding_plugin="pylibjpeg")
        ds.pixel_array  # noqa: B018 - decoded for its errors only
    except Exception as e:  # noqa: BLE001 - libjpeg's error codes arrive as RuntimeError/ValueError
        raise DataError(os.fspath(path), f"corrupt JPEG stream ({ts.name}): {_last_line(e)}") from None


def read_image(
    path: str | os.PathLike,
    *,
    voi: int | None = 0,
    prefer_voi_lut: bool = True,
    scaling: Scaling = "range",
    dicom_plugin: str | None = "pillow",
) -> np.ndarray:
    """Read a radiograph as ``uint8 [H, W]`` with bright = dense (bone white).

    voi: which VOI LUT / window of a DICOM to apply (0 = the first); ``None`` skips the VOI step.
    prefer_voi_lut: when a DICOM has both a VOI LUT Sequence and a window, use the LUT.
    scaling: ``"range"`` maps the nominal range of the data (BitsStored, LUT depth, window output, 16 bits of
      a 16-bit PNG) to 0..255; ``"minmax"`` stretches each image's own min..max instead.
    dicom_plugin: the pydicom decoding plugin to use for compressed DICOMs when it supports the transfer
      syntax and decodes the file (else pydicom chooses among all installed plugins: Pillow, for one, refuses
      12-bit JPEG Extended, which pylibjpeg decodes). Lossy JPEG decoders differ by a level or two, so one is
      pinned; Pillow is a core dependency and decodes JPEG Baseline (all Kaggle SIIM files) about 4x faster
      than pylibjpeg-libjpeg. ``None`` lets pydicom choose.
    """
    path = os.fspath(path)
    if scaling not in ("range", "minmax"):
        raise ValueError(f"scaling must be 'range' or 'minmax', got {scaling!r}")
    kind = _kind(path)
    if kind == "dicom":
        values, low, high = _read_dicom(path, voi=voi, prefer_voi_lut=prefer_voi_lut, plugin=dicom_plugin)
    else:
        values, low, high = _read_pil(path)
    if scaling == "minmax":
        low, high = float(values.min()), float(values.max())
    return _to_uint8(values, low, high)


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if values.dtype == np.uint8 and (low, high) == (0, 255):
        return values
    if high <= low:  # a constant image: nothing to stretch
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _read_pil(path: str) -> tuple[np.ndarray, float, float]:
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                values = np.asarray(img)
            elif mode == "F":
                raise DataError(path, "floating-point images are not radiographs jaxprobe can scale; expected 8/16-bit")
            else:
                values = np.asarray(img.convert("L"))  # 8-bit sources: no clipping possible
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(path, f"cannot decode image: {e}") from None
    if values.dtype == np.uint8:
        return values, 0.0, 255.0
    if values.min() < 0 or values.max() > 65535:
        raise DataError(path, f"values {values.min()}..{values.max()} outside the 16-bit range of a grey PNG")
    return values, 0.0, 65535.0


def _stored_range(ds: pydicom.Dataset) -> tuple[float, float]:
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _lut_range(item: pydicom.Dataset) -> tuple[float, float]:
    return 0.0, 2.0 ** int(item.LUTDescriptor[2]) - 1


def _modality_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """Range of the values after the modality LUT step, as the standard (and pydicom's windowing) defines it."""
    if ds.get("ModalityLUTSequence"):
        return _lut_range(ds.ModalityLUTSequence[0])
    low, high = _stored_range(ds)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = sorted((low * float(slope) + float(intercept), high * float(slope) + float(intercept)))
    return low, high


def _decode_pixels(path: str, ds: pydicom.Dataset, preferred_plugin: str | None) -> np.ndarray:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is not None and ts.is_compressed:
        try:
            decoder = pydicom.pixels.get_decoder(ts)
        except NotImplementedError:
            raise DataError(path, f"transfer syntax {ts.name} ({ts}) has no pixel data decoder in pydicom") from None
        if not _decoder_available(decoder):
            packages = _DECODER_PACKAGES.get(str(ts), "a pydicom pixel data plugin")
            raise DataError(
                path,
                f"pixel data is compressed with {ts.name} ({ts}) and no installed package decodes it; "
                f"install {packages}, e.g. pip install 'jaxprobe[dicom]'",
            )
        if preferred_plugin and preferred_plugin in decoder.available_plugins:
            ds.pixel_array_options(decoding_plugin=preferred_plugin)
            try:
                return ds.pixel_array
            except Exception as e:  # noqa: BLE001 - e.g. Pillow on 12-bit JPEG Extended: the other plugins may decode it
                if (preferred_plugin, str(ts)) not in _FALLBACKS_REPORTED:
                    _FALLBACKS_REPORTED.add((preferred_plugin, str(ts)))
                    log.warning("%s: the %s plugin cannot decode %s (%s); this and any further such files are "
                                "decoded by pydicom's other installed plugins", path, preferred_plugin, ts.name,
                                _last_line(e))
                ds.pixel_array_options(decoding_plugin="")
    try:
        return ds.pixel_array
    except Exception as e:  # pydicom raises ValueError/RuntimeError/... for truncated or undecodable data
        raise DataError(path, f"cannot decode pixel data ({ts.name if ts else 'unknown transfer syntax'}): {e}") from None


def _decoder_available(decoder) -> bool:
    return decoder.is_available


def _read_dicom(path: str, *, voi: int | None, prefer_voi_lut: bool, plugin: str | None) -> tuple[np.ndarray, float, float]:
    try:
        ds = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, EOFError, OSError, ValueError, KeyError, struct.error) as e:
        raise DataError(path, f"not a readable DICOM file: {e}") from None
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise DataError(path, "float pixel data (Float/Double Float Pixel Data) is not supported; expected integer "
                                  "Pixel Data (7FE0,0010)")
        read_dicom_header(path)  # names a missing or truncated Pixel Data element as such
        raise DataError(path, "DICOM has no PixelData element")
    for tag in ("BitsStored", "Rows", "Columns", "PhotometricInterpretation"):
        if tag not in ds:
            raise DataError(path, f"DICOM lacks {tag}, needed to decode the pixels")
    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(path, f"PhotometricInterpretation {photometric}; expected MONOCHROME1 or MONOCHROME2")
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise DataError(path, f"{ds.NumberOfFrames} frames; expected a single radiograph")

    stored = _decode_pixels(path, ds, plugin)
    values = apply_modality_lut(stored, ds)
    low, high = _modality_range(ds)
    if voi is not None:
        values, low, high = _apply_voi(path, ds, values, low, high, voi, prefer_voi_lut)
    # MONOCHROME1 means low values are bright; Presentation LUT Shape INVERSE asks the same of MONOCHROME2.
    # (DX files often carry both for MONOCHROME1, which is one inversion, not two.)
    if photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")).strip() == "INVERSE":
        values = (high + low) - values.astype(np.float64)
    return values, low, high


def _apply_voi(path, ds, values, low, high, index, prefer_lut):
    luts = ds.get("VOILUTSequence") or []
    has_lut = len(luts) > 0 and all(("LUTDescriptor" in it and "LUTData" in it) for it in luts)
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if has_lut and (prefer_lut or not has_window):
        if not 0 <= index < len(luts):
            raise DataError(path, f"VOI LUT index {index} requested; the file has {len(luts)} VOI LUT(s)")
        if not np.issubdtype(values.dtype, np.integer) and np.array_equal(values, np.round(values)):
            values = values.astype(np.int64)  # an identity rescale made floats; LUTs are indexed by integers
        return apply_voi(values, ds, index=index), *_lut_range(luts[index])
    if has_window:
        count = ds["WindowCenter"].VM
        if not 0 <= index < count:
            raise DataError(path, f"window index {index} requested; the file has {count} window(s)")
        # pydicom maps the window onto the modality output range [low, high]
        return apply_windowing(values.astype(np.float64), ds, index=index), low, high
    return values, low, high


def image_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    path = os.fspath(path)
    kind = _kind(path)
    if kind == "dicom":
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            return int(ds.Rows), int(ds.Columns)
        except (pydicom.errors.InvalidDicomError, EOFError, OSError, ValueError, AttributeError) as e:
            raise DataError(path, f"cannot read DICOM Rows/Columns: {e}") from None
    try:
        with Image.open(path) as img:
            width, height = img.size
            return height, width
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(path, f"cannot read image size: {e}") from None


_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0, little endian


def _has_sequence_delimiter(path: str, value_start: int) -> bool:
    """Whether encapsulated pixel data ends with its sequence delimiter (a truncated file lost it)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(value_start, size - 65536))
        if _SEQUENCE_DELIMITER in f.read():
            return True
        f.seek(value_start)
        return _SEQUENCE_DELIMITER in f.read()


def read_dicom_header(path: str | os.PathLike) -> pydicom.Dataset:
    """The DICOM header without decoding pixels, after checking that pixel data is present and complete.

    Cheap enough for a scan of 10,000+ files: reads up to the Pixel Data element, then checks its tag and,
    for native (uncompressed) data, that the declared length fits in the file and covers Rows x Columns.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            tag_start = f.tell()
            head = f.read(12)
    except (pydicom.errors.InvalidDicomError, EOFError, OSError, ValueError, KeyError, struct.error) as e:
        raise DataError(path, f"not a readable DICOM file: {e}") from None
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None:
        raise DataError(path, "DICOM lacks a Transfer Syntax UID in its file meta information")
    endian = "<" if ts.is_little_endian else ">"
    if len(head) < 8 or struct.unpack(f"{endian}HH", head[:4]) != (0x7FE0, 0x0010):
        raise DataError(path, "DICOM has no Pixel Data element (7FE0,0010); the file may be truncated")
    if ts.is_implicit_VR:
        (length,) = struct.unpack(f"{endian}I", head[4:8])
        value_start = tag_start + 8
    elif len(head) == 12:
        (length,) = struct.unpack(f"{endian}I", head[8:12])
        value_start = tag_start + 12
    else:
        raise DataError(path, "DICOM ends inside the Pixel Data element header (truncated file)")
    if length == 0xFFFFFFFF and not _has_sequence_delimiter(path, value_start):
        raise DataError(path, "encapsulated (compressed) Pixel Data has no sequence delimiter: the file is truncated")
    if length != 0xFFFFFFFF:  # native pixel data: declared length must be in the file and big enough
        if value_start + length > os.path.getsize(path):
            raise DataError(path, f"Pixel Data declares {length} bytes but the file ends before them (truncated file)")
        if not ts.is_compressed and {"Rows", "Columns", "BitsAllocated"} <= set(ds.dir()):
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            samples = int(ds.get("SamplesPerPixel", 1))
            expected = (int(ds.Rows) * int(ds.Columns) * frames * samples * int(ds.BitsAllocated) + 7) // 8
            if length < expected:
                raise DataError(path, f"Pixel Data has {length} bytes; Rows x Columns x BitsAllocated need {expected}")
    return ds
