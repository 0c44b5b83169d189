"""read_image on real radiographs (pydicom-data, pydicom) and on small files written here in real formats.

Oracles: the DICOM standard's LINEAR window formula (PS3.3 C.11.2.1.2.1) written out below, LUT tables
indexed by hand, and the anatomy of a PA chest film (mediastinum brighter than the lung fields).
"""
import os
import re
import shutil
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from jaxprobe.data import images
from jaxprobe.data.errors import DataError
from jaxprobe.data.images import image_shape, read_image

TEST_FILES = os.path.dirname(get_testdata_file("CT_small.dcm"))
SMALL_CR = os.path.join(TEST_FILES, "dicomdirtests", "77654033", "CR1", "6154")


def window_linear(x, center, width, y_min, y_max):
    """DICOM PS3.3 C.11.2.1.2.1, function LINEAR."""
    x = np.asarray(x, dtype=np.float64)
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * (y_max - y_min) + y_min
    return np.where(x <= low, y_min, np.where(x > high, y_max, y))


def to8(y, low, high):
    return np.clip(np.rint((np.asarray(y, np.float64) - low) / (high - low) * 255), 0, 255).astype(np.uint8)


def write_dicom(path, pixels, *, bits_stored=12, photometric="MONOCHROME2", pixel_data=True, **tags):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientID = "P1"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    if pixel_data:
        ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_real_chest_film_monochrome1_comes_out_bone_white():
    image = read_image(get_testdata_file("RG1_UNCI.dcm"))
    assert image.dtype == np.uint8 and image.shape == (1955, 1841)
    rows = slice(700, 1100)  # mid-chest
    mediastinum = image[rows, 880:960].mean()
    lungs = (image[rows, 400:600].mean() + image[rows, 1250:1450].mean()) / 2
    assert mediastinum > lungs + 20
    stored = pydicom.dcmread(get_testdata_file("RG1_UNCI.dcm")).pixel_array.astype(float)
    assert np.corrcoef(stored.ravel()[::97], image.ravel()[::97].astype(float))[0, 1] < -0.95  # inverted


def test_real_chest_film_window_oracle():
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCI.dcm"))
    y = window_linear(ds.pixel_array, float(ds.WindowCenter), float(ds.WindowWidth), 0, 2**15 - 1)
    expected = to8((2**15 - 1) - y, 0, 2**15 - 1)
    assert np.abs(read_image(get_testdata_file("RG1_UNCI.dcm")).astype(int) - expected).max() <= 1


def test_compressed_jpeg2000_lossless_matches_uncompressed():
    plain = read_image(get_testdata_file("RG1_UNCI.dcm")).astype(float)
    j2k = read_image(get_testdata_file("RG1_J2KR.dcm")).astype(float)
    assert j2k.shape == plain.shape and np.abs(j2k - plain).mean() < 1.0


def test_small_cr_rescale_window_and_monochrome1():
    ds = pydicom.dcmread(SMALL_CR)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    y_min, y_max = intercept, (2**ds.BitsStored - 1) * slope + intercept
    y = window_linear(ds.pixel_array * slope + intercept, float(ds.WindowCenter), float(ds.WindowWidth), y_min, y_max)
    expected = to8(y_max + y_min - y, y_min, y_max)
    got = read_image(SMALL_CR)
    assert got.shape == (ds.Rows, ds.Columns)
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_monochrome1_twin_is_the_inverse(tmp_path):
    twin = tmp_path / "mono1.dcm"
    ds = pydicom.dcmread(SMALL_CR)
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.save_as(tmp_path / "mono2.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(twin)
    as_mono2 = read_image(tmp_path / "mono2.dcm").astype(int)
    assert np.abs(read_image(twin).astype(int) - (255 - as_mono2)).max() <= 1
    ds.PresentationLUTShape = "INVERSE"  # with MONOCHROME1: still one inversion
    ds.save_as(tmp_path / "mono1_inverse.dcm")
    np.testing.assert_array_equal(read_image(tmp_path / "mono1_inverse.dcm"), read_image(twin))
    ds.PhotometricInterpretation = "MONOCHROME2"  # MONOCHROME2 shown inverted
    ds.save_as(tmp_path / "mono2_inverse.dcm")
    np.testing.assert_array_equal(read_image(tmp_path / "mono2_inverse.dcm"), read_image(twin))


def test_window_index_and_no_voi(tmp_path):
    pixels = np.array([[0, 500, 1000, 1500], [2000, 2500, 3000, 4095]])
    path = write_dicom(tmp_path / "two.dcm", pixels, RescaleSlope="0.5", RescaleIntercept="-100",
                       WindowCenter=["500", "800"], WindowWidth=["1000", "400"])
    y_min, y_max = -100.0, 4095 * 0.5 - 100
    values = pixels * 0.5 - 100
    for index, (center, width) in enumerate([(500, 1000), (800, 400)]):
        expected = to8(window_linear(values, center, width, y_min, y_max), y_min, y_max)
        np.testing.assert_array_equal(read_image(path, voi=index), expected)
    np.testing.assert_array_equal(read_image(path, voi=None), to8(values, y_min, y_max))
    with pytest.raises(DataError, match="2 window"):
        read_image(path, voi=2)


def test_dynamic_range_from_bits_stored_not_dtype(tmp_path):
    pixels = np.array([[0, 1023], [512, 256]])
    path = write_dicom(tmp_path / "ten.dcm", pixels, bits_stored=10)
    np.testing.assert_array_equal(read_image(path), to8(pixels, 0, 1023))  # not /65535


def test_minmax_scaling(tmp_path):
    pixels = np.array([[100, 200], [300, 400]])
    path = write_dicom(tmp_path / "mm.dcm", pixels)
    np.testing.assert_array_equal(read_image(path, scaling="minmax"), to8(pixels, 100, 400))


def test_voi_lut_sequence(tmp_path):
    path = get_testdata_file("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    item = ds.VOILUTSequence[0]
    entries, first, bits = item.LUTDescriptor
    lut = np.frombuffer(item.LUTData, "<u2") if isinstance(item.LUTData, bytes) else np.asarray(item.LUTData)
    expected = to8(lut[np.clip(ds.pixel_array.astype(int) - first, 0, entries - 1)], 0, 2**bits - 1)
    assert np.abs(read_image(path).astype(int) - expected).max() <= 1
    ds.RescaleSlope, ds.RescaleIntercept = "1", "0"  # identity rescale: floats, but still a valid LUT index
    ds.save_as(tmp_path / "rescaled.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_image(tmp_path / "rescaled.dcm"), read_image(path))


def test_prefer_voi_lut_picks_the_lut_or_the_window_when_a_file_has_both(tmp_path):
    """A file with a VOI LUT Sequence and a window: prefer_voi_lut chooses which one is applied. Oracle: pydicom's
    apply_voi_lut with prefer_lut True / False, each scaled to 8 bits from its output range (the LUT's 10 bits, the
    12-bit stored range for the window)."""
    from pydicom.pixels import apply_voi_lut

    pixels = (np.arange(48).reshape(6, 8) * 85) % 4096
    lut = Dataset()
    lut.add_new(0x00283002, "US", [4096, 0, 10])  # LUT Descriptor: entries, first stored value, bits
    lut.add_new(0x00283006, "US", np.rint(np.sqrt(np.arange(4096) / 4095) * 1023).astype(int).tolist())
    path = write_dicom(tmp_path / "both.dcm", pixels, WindowCenter="1500", WindowWidth="1000",
                       VOILUTSequence=[lut])
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    with_lut = to8(apply_voi_lut(stored, ds, prefer_lut=True), 0, 2**10 - 1)
    with_window = to8(apply_voi_lut(stored, ds, prefer_lut=False), 0, 2**12 - 1)
    assert np.count_nonzero(with_lut != with_window) > pixels.size // 2
    np.testing.assert_array_equal(read_image(path, prefer_voi_lut=True), with_lut)
    np.testing.assert_array_equal(read_image(path), with_lut)  # the default prefers the LUT
    np.testing.assert_array_equal(read_image(path, prefer_voi_lut=False), with_window)


def test_modality_lut_sequence():
    path = get_testdata_file("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    item = ds.ModalityLUTSequence[0]
    entries, first, bits = item.LUTDescriptor
    lut = np.frombuffer(item.LUTData, "<u2") if isinstance(item.LUTData, bytes) else np.asarray(item.LUTData)
    expected = to8(lut[np.clip(ds.pixel_array.astype(int) - first, 0, entries - 1)], 0, 2**bits - 1)
    assert np.abs(read_image(path).astype(int) - expected).max() <= 1


def test_png_16_bit_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 32).round().astype(np.uint16).reshape(64, 32)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    assert Image.open(tmp_path / "ramp.png").mode.startswith("I")
    np.testing.assert_array_equal(read_image(tmp_path / "ramp.png"), to8(ramp, 0, 65535))


def test_png_8_bit_rgb_and_jpeg(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (20, 30)).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), grey)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), grey)
    smooth = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    Image.fromarray(smooth).save(tmp_path / "s.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "s.jpg").astype(int) - smooth).mean() < 2
    assert image_shape(tmp_path / "s.jpg") == (48, 64)


def test_bad_files_name_the_file(tmp_path):
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file at all")
    with pytest.raises(DataError, match="notes.dcm"):
        read_image(text)
    no_pixels = write_dicom(tmp_path / "nopix.dcm", np.zeros((4, 4)), pixel_data=False)
    with pytest.raises(DataError, match="nopix.dcm.*Pixel ?Data"):
        read_image(no_pixels)
    full = write_dicom(tmp_path / "full.dcm", np.zeros((64, 64)))
    data = open(full, "rb").read()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 1000])
    with pytest.raises(DataError, match="cut.dcm"):
        read_image(tmp_path / "cut.dcm")
    with pytest.raises(DataError, match="cut.dcm.*truncated"):
        images.read_dicom_header(tmp_path / "cut.dcm")
    png = tmp_path / "broken.png"
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(DataError, match="broken.png"):
        read_image(png)
    with pytest.raises(DataError, match="signature"):
        (tmp_path / "x.txt").write_text("hello")
        read_image(tmp_path / "x.txt")


def test_missing_decoder_names_transfer_syntax_and_package(tmp_path, monkeypatch):
    path = shutil.copy(get_testdata_file("RG1_J2KI.dcm"), tmp_path / "j2k.dcm")
    monkeypatch.setattr(images, "_decoder_available", lambda decoder: False)
    with pytest.raises(DataError, match=r"j2k.dcm.*JPEG 2000.*pylibjpeg-openjpeg"):
        read_image(path)
    monkeypatch.setattr(images, "_DECODER_PACKAGES", {})  # a transfer syntax jaxprobe has no package hint for
    with pytest.raises(DataError, match=re.escape(
            f"{path}: pixel data is compressed with JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91) and no "
            "installed package decodes it; install a pydicom pixel data plugin, e.g. pip install 'jaxprobe[dicom]'")):
        read_image(path)


def test_a_transfer_syntax_pydicom_cannot_decode_at_all_is_refused_by_name(tmp_path):
    """MPEG-2 video: pydicom has no pixel data decoder for it whatever is installed."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    path = write_dicom(tmp_path / "video.dcm", np.zeros((4, 4)))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(12)])
    ds.save_as(path)
    with pytest.raises(DataError, match=re.escape(f"{path}: transfer syntax MPEG2 Main Profile / Main Level "
                                                  f"({MPEG2MPML}) has no pixel data decoder in pydicom")):
        read_image(path)


def test_a_file_that_cannot_be_opened_is_named_with_the_reason(tmp_path):
    absent = tmp_path / "absent.png"
    with pytest.raises(DataError, match=re.escape(f"{absent}: cannot open: No such file or directory")):
        read_image(absent)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: cannot open: Is a directory")):
        read_image(tmp_path)


def _jpeg_dicoms(tmp_path, n):
    """The JPEG Baseline DICOMs (8-bit, Pillow-encoded) of a synthetic SIIM set of n images, sorted."""
    from jaxprobe.data.synth import make_siim

    root, _ = make_siim(str(tmp_path), n=n, seed=0, size=128, sixteen_bit_fraction=0.0)
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".dcm"))


def test_jpeg_baseline_dicom_decoders_agree(tmp_path):
    path = _jpeg_dicoms(tmp_path, 2)[0]
    pinned = read_image(path).astype(int)
    chosen_by_pydicom = read_image(path, dicom_plugin=None).astype(int)
    assert np.abs(pinned - chosen_by_pydicom).mean() < 1.0


def _pixel_data_offset(path):
    """Byte offset of the Pixel Data element's tag, found by pydicom (an outside reader), not by jaxprobe."""
    with open(path, "rb") as f:
        pydicom.dcmread(f, stop_before_pixels=True)
        return f.tell()


def test_dicom_header_check_names_each_way_pixel_data_can_be_short(tmp_path):
    """read_dicom_header rejects, with the file and the numbers: pixel data shorter than Rows x Columns x frames x
    samples x bits (the file itself complete), a file cut inside the Pixel Data element's header, and a file
    without a transfer syntax; it accepts complete files in explicit and implicit VR, one or several frames."""
    good = write_dicom(tmp_path / "good.dcm", np.arange(12).reshape(3, 4))
    assert images.read_dicom_header(good).Rows == 3
    frames = write_dicom(tmp_path / "frames.dcm", np.arange(24).reshape(6, 4), NumberOfFrames=2)
    ds = pydicom.dcmread(frames)
    ds.Rows = 3  # two frames of 3 x 4: exactly the 48 bytes present
    ds.save_as(frames)
    assert images.read_dicom_header(frames).NumberOfFrames == 2
    ds.NumberOfFrames = 3  # three frames declared, two present
    ds.save_as(frames)
    with pytest.raises(DataError, match=rf"^{frames}: Pixel Data has 48 bytes; Rows x Columns x BitsAllocated need 72$"):
        images.read_dicom_header(frames)
    short = write_dicom(tmp_path / "short.dcm", np.arange(12).reshape(3, 4))
    ds = pydicom.dcmread(short)
    ds.Columns = 5
    ds.save_as(short)
    with pytest.raises(DataError, match=rf"^{short}: Pixel Data has 24 bytes; Rows x Columns x BitsAllocated need 30$"):
        images.read_dicom_header(short)
    ds.Columns, ds.SamplesPerPixel = 4, 3
    ds.save_as(short)
    with pytest.raises(DataError, match="need 72$"):
        images.read_dicom_header(short)

    implicit = tmp_path / "implicit.dcm"
    ds = pydicom.dcmread(good)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(implicit, enforce_file_format=True)
    assert images.read_dicom_header(implicit).Columns == 4
    data = open(implicit, "rb").read()
    (tmp_path / "implicit_cut.dcm").write_bytes(data[:-1])
    with pytest.raises(DataError, match="implicit_cut.dcm: Pixel Data declares 24 bytes but the file ends before"):
        images.read_dicom_header(tmp_path / "implicit_cut.dcm")

    data = open(good, "rb").read()
    start = _pixel_data_offset(good)
    # (cut within the 12-byte explicit-VR element header, pydicom itself stops: "not a readable DICOM file")
    for keep in (0, 4, 7):
        cut = tmp_path / f"cut{keep}.dcm"
        cut.write_bytes(data[:start + keep])
        message = "DICOM has no Pixel Data element (7FE0,0010); the file may be truncated"
        with pytest.raises(DataError, match=rf"^{cut}: {re.escape(message)}$"):
            images.read_dicom_header(cut)

    bare = tmp_path / "bare.dcm"
    ds = pydicom.dcmread(good)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(bare, enforce_file_format=False)
    with pytest.raises(DataError, match=rf"^{bare}: DICOM lacks a Transfer Syntax UID in its file meta information$"):
        images.read_dicom_header(bare)


def refused(path, pattern):
    """pytest.raises for a DataError whose message is the file, a colon, then ``pattern`` (a regex)."""
    return pytest.raises(DataError, match=rf"^{re.escape(str(path))}: {pattern}")


def test_signed_pixels_and_a_rescale_map_like_their_offset_binary_twin(tmp_path):
    """Signed 12-bit pixels (PixelRepresentation 1) span -2048..2047; stored offset by +2048 as unsigned they are the
    same picture, so with no VOI step both read to the same 8-bit image. A rescale (slope 2, intercept -1024) moves
    the values and their nominal range together and leaves the picture as it is; a slope without an intercept is no
    rescale at all (pydicom applies neither)."""
    ramp = np.arange(4096).reshape(64, 64) - 2048
    unsigned = read_image(write_dicom(tmp_path / "u.dcm", ramp + 2048), voi=None)
    assert len(np.unique(unsigned)) == 256
    signed = write_dicom(tmp_path / "s.dcm", ramp, PixelRepresentation=1)
    assert pydicom.dcmread(signed).pixel_array.min() == -2048  # stored as two's complement
    np.testing.assert_array_equal(read_image(signed, voi=None), unsigned)
    rescaled = write_dicom(tmp_path / "r.dcm", ramp, PixelRepresentation=1, RescaleSlope="2", RescaleIntercept="-1024")
    np.testing.assert_array_equal(read_image(rescaled, voi=None), unsigned)
    slope_only = write_dicom(tmp_path / "so.dcm", ramp + 2048, RescaleSlope="2")
    np.testing.assert_array_equal(read_image(slope_only, voi=None), unsigned)


def test_eight_bits_in_a_sixteen_bit_container_come_back_unchanged(tmp_path):
    pixels = np.arange(256).reshape(16, 16)
    image = read_image(write_dicom(tmp_path / "eight.dcm", pixels, bits_stored=8), voi=None)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, pixels)


def test_a_constant_image_reads_as_zeros_under_minmax(tmp_path):
    image = read_image(write_dicom(tmp_path / "flat.dcm", np.full((4, 5), 700)), scaling="minmax")
    assert image.dtype == np.uint8 and image.shape == (4, 5)
    np.testing.assert_array_equal(image, 0)


def test_dicom_is_known_by_its_prefix_or_its_name(tmp_path):
    """A DICOM with the 128-byte preamble and "DICM" reads under any name; without the signature, names ending in
    .dcm/.dicom (any case) and names without a dot go to the DICOM reader (which names the file), others are
    refused by signature."""
    pixels = np.arange(12).reshape(3, 4) * 300
    dcm = write_dicom(tmp_path / "a.dcm", pixels)
    other = shutil.copy(dcm, tmp_path / "scan.img")
    np.testing.assert_array_equal(read_image(other), read_image(dcm))
    assert image_shape(other) == (3, 4)
    for name in ("notes.dcm", "NOTES.DCM", "notes.dicom", "Notes.DICOM", "notes"):
        (tmp_path / name).write_text("not a DICOM file at all")
        with refused(tmp_path / name, r"not a readable DICOM file"):
            read_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a DICOM file at all")
    with refused(tmp_path / 'notes.txt', r"not a DICOM, PNG or JPEG file "
                                        r"\(unrecognised signature\)$"):
        read_image(tmp_path / "notes.txt")


def test_image_shape_reads_the_header(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCI.dcm"))
    assert image_shape(get_testdata_file("RG1_UNCI.dcm")) == (ds.Rows, ds.Columns) != (ds.Columns, ds.Rows)
    assert image_shape(write_dicom(tmp_path / "w.dcm", np.zeros((3, 7)))) == (3, 7)
    Image.fromarray(np.zeros((5, 9), np.uint8)).save(tmp_path / "p.png")
    assert image_shape(tmp_path / "p.png") == (5, 9)
    (tmp_path / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    with refused(tmp_path / 'bad.dcm', r"cannot read DICOM Rows/Columns"):
        image_shape(tmp_path / "bad.dcm")
    png = tmp_path / "cut.png"
    png.write_bytes((tmp_path / "p.png").read_bytes()[:10])
    with refused(png, r"cannot read image size"):
        image_shape(png)


def test_dicom_errors_start_with_the_file(tmp_path):
    """Each refusal names the file first and says what was expected."""
    pixels = np.arange(12).reshape(3, 4)

    def refuses(path, message):
        with refused(path, message):
            read_image(path)

    path = write_dicom(tmp_path / "nobits.dcm", pixels)
    ds = pydicom.dcmread(path)
    del ds.BitsStored
    ds.save_as(path)
    refuses(path, "DICOM lacks BitsStored, needed to decode the pixels$")
    refuses(write_dicom(tmp_path / "nopix.dcm", pixels, pixel_data=False),
            re.escape("DICOM has no Pixel Data element (7FE0,0010); the file may be truncated") + "$")
    floats = write_dicom(tmp_path / "float.dcm", pixels, pixel_data=False, BitsAllocated=32)
    ds = pydicom.dcmread(floats)
    ds.FloatPixelData = pixels.astype("<f4").tobytes()
    ds.save_as(floats)
    refuses(floats, re.escape("float pixel data (Float/Double Float Pixel Data) is not supported; expected integer "
                              "Pixel Data (7FE0,0010)") + "$")
    doubles = write_dicom(tmp_path / "double.dcm", pixels, pixel_data=False, BitsAllocated=64)
    ds = pydicom.dcmread(doubles)
    ds.DoubleFloatPixelData = pixels.astype("<f8").tobytes()
    ds.save_as(doubles)
    refuses(doubles, re.escape("float pixel data (Float/Double Float Pixel Data) is not supported") + ".*$")
    refuses(write_dicom(tmp_path / "rgb.dcm", pixels, photometric="YBR_FULL"),
            "PhotometricInterpretation YBR_FULL; expected MONOCHROME1 or MONOCHROME2$")
    frames = write_dicom(tmp_path / "frames.dcm", np.arange(24).reshape(6, 4), NumberOfFrames=2)
    ds = pydicom.dcmread(frames)
    ds.Rows = 3
    ds.save_as(frames)
    refuses(frames, "2 frames; expected a single radiograph$")
    short = write_dicom(tmp_path / "short.dcm", pixels)
    ds = pydicom.dcmread(short)
    ds.Columns = 5  # the file is complete, its pixel data too short for 3 x 5
    ds.save_as(short)
    refuses(short, re.escape("cannot decode pixel data (Explicit VR Little Endian): "))


def test_voi_index_and_incomplete_windows(tmp_path):
    """voi=i picks the i-th VOI LUT (oracle: pydicom's apply_voi with that index); an index past the last LUT or
    window is refused; a window centre without a width is no window."""
    from pydicom.pixels import apply_voi

    pixels = (np.arange(48).reshape(6, 8) * 85) % 4096
    luts = []
    for power in (0.5, 2.0):
        item = Dataset()
        item.add_new(0x00283002, "US", [4096, 0, 10])
        item.add_new(0x00283006, "US", np.rint((np.arange(4096) / 4095) ** power * 1023).astype(int).tolist())
        luts.append(item)
    path = write_dicom(tmp_path / "two.dcm", pixels, VOILUTSequence=luts)
    ds = pydicom.dcmread(path)
    first, second = (to8(apply_voi(ds.pixel_array, ds, index=i), 0, 1023) for i in (0, 1))
    assert np.count_nonzero(first != second) > pixels.size // 2
    np.testing.assert_array_equal(read_image(path), first)
    np.testing.assert_array_equal(read_image(path, voi=1), second)
    with refused(path, r"VOI LUT index 2 requested; the file has 2 VOI LUT"):
        read_image(path, voi=2)
    windowed = write_dicom(tmp_path / "w.dcm", pixels, WindowCenter="1500", WindowWidth="1000")
    with refused(windowed, r"window index 1 requested; the file has 1 "):
        read_image(windowed, voi=1)
    centre_only = write_dicom(tmp_path / "c.dcm", pixels, WindowCenter="1500")
    np.testing.assert_array_equal(read_image(centre_only), read_image(centre_only, voi=None))
    np.testing.assert_array_equal(read_image(centre_only), to8(pixels, 0, 4095))


def test_dicom_plugin_pins_the_jpeg_decoder(tmp_path):
    """JPEG Baseline DICOMs decode through the plugin named (Pillow by default), so the image equals that plugin's
    decoding through pydicom itself; the two plugins differ on this file, so the choice shows."""
    paths = _jpeg_dicoms(tmp_path, 4)
    differ = 0
    for path in paths:
        decoded = {}
        for plugin in ("pillow", "pylibjpeg"):
            ds = pydicom.dcmread(path)
            ds.pixel_array_options(decoding_plugin=plugin)
            decoded[plugin] = ds.pixel_array
        assert ds.BitsStored == 8 and "WindowCenter" not in ds and "VOILUTSequence" not in ds
        photometric = str(ds.PhotometricInterpretation).strip()
        for plugin, stored in decoded.items():
            values = 255 - stored.astype(int) if photometric == "MONOCHROME1" else stored
            got = read_image(path) if plugin == "pillow" else read_image(path, dicom_plugin=plugin)
            np.testing.assert_array_equal(got, np.asarray(values, np.uint8))
        differ += int(np.any(decoded["pillow"] != decoded["pylibjpeg"]))
    assert differ > 0


def test_dicom_header_check_on_big_endian_encapsulated_and_unreadable_files(tmp_path):
    """Explicit VR Big Endian (retired, still met in archives) is read with its byte order; an implicit-VR file cut
    just after the Pixel Data element's 8-byte header is named by its declared length; compressed (encapsulated)
    pixel data cut before its sequence delimiter is named as truncated; a file pydicom cannot read is named."""
    big = get_testdata_file("MR_small_bigendian.dcm")  # pydicom's own test file, 64 x 64 x 16 bits
    assert pydicom.dcmread(big).file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRBigEndian
    assert images.read_dicom_header(big).Columns == 64
    (tmp_path / "big_short.dcm").write_bytes(open(big, "rb").read()[:-2])
    with pytest.raises(DataError, match=r"big_short.dcm: Pixel Data declares 8192 bytes but the file ends before"):
        images.read_dicom_header(tmp_path / "big_short.dcm")
    good = write_dicom(tmp_path / "good.dcm", np.arange(12).reshape(3, 4))

    ds = pydicom.dcmread(good)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    implicit = tmp_path / "implicit.dcm"
    ds.save_as(implicit, enforce_file_format=True)
    header_only = tmp_path / "header_only.dcm"
    header_only.write_bytes(implicit.read_bytes()[:_pixel_data_offset(implicit) + 8])
    with refused(header_only, r"Pixel Data declares 24 bytes but the file "
                                        r"ends before them \(truncated file\)$"):
        images.read_dicom_header(header_only)

    compressed = get_testdata_file("RG1_J2KI.dcm")
    assert images.read_dicom_header(compressed).Rows > 0
    cut = tmp_path / "j2k_cut.dcm"
    cut.write_bytes(open(compressed, "rb").read()[:-100])
    with refused(cut, r"encapsulated \(compressed\) Pixel Data has no "
                                        r"sequence delimiter: the file is truncated$"):
        images.read_dicom_header(cut)

    text = tmp_path / "text.dcm"
    text.write_text("not a DICOM file at all")
    with refused(text, r"not a readable DICOM file: "):
        images.read_dicom_header(text)


def test_a_12_bit_jpeg_extended_that_pillow_refuses_is_decoded_by_another_plugin(caplog, monkeypatch):
    """Pillow, the pinned default, refuses 12-bit JPEG Extended (pydicom's JPGExtended.dcm); the file then decodes
    as pydicom decodes it with every installed plugin (pylibjpeg here), not as an error, and passes verification.
    The switch is said once per plugin and transfer syntax, naming the first file."""
    pytest.importorskip("pylibjpeg")
    monkeypatch.setattr(images, "_FALLBACKS_REPORTED", set())
    path = get_testdata_file("JPGExtended.dcm")
    ds = pydicom.dcmread(path)
    assert ds.BitsStored == 12 and ds.file_meta.TransferSyntaxUID.name == "JPEG Extended (Process 2 and 4)"
    ds.pixel_array_options(decoding_plugin="pillow")
    with pytest.raises(Exception, match="12-bit"):
        ds.pixel_array  # noqa: B018
    image = read_image(path)
    np.testing.assert_array_equal(image, read_image(path, dicom_plugin="pylibjpeg"))
    np.testing.assert_array_equal(image, read_image(path, dicom_plugin=None))
    images.verify_image(path)
    said = [r.getMessage() for r in caplog.records if r.name == "jaxprobe.data.images"]
    assert said == [f"{path}: the pillow plugin cannot decode JPEG Extended (Process 2 and 4) (pillow: Pillow does not "
                    "support 'JPEG Extended' for samples with 12-bit precision); this and any further such files are "
                    "decoded by pydicom's other installed plugins"]


def test_verify_image_passes_sound_jpeg_dicoms_and_names_the_file_of_a_damaged_stream(tmp_path):
    """libjpeg (pylibjpeg) checks each JPEG stream: sound baseline files pass; with entropy-coded bytes zeroed
    Pillow still decodes the file without a word, and verification names the file, the transfer syntax and
    libjpeg's own complaint (the last line of pydicom's report)."""
    pytest.importorskip("pylibjpeg")
    paths = _jpeg_dicoms(tmp_path, 2)
    for path in paths + [get_testdata_file("JPEG-LL.dcm")]:
        images.verify_image(path)
    data = bytearray(open(paths[0], "rb").read())
    scan = data.find(b"\xff\xda", data.find(b"\xff\xd8\xff"))
    data[scan + 40:scan + 296] = bytes(256)
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(bytes(data))
    read_image(damaged)
    with refused(damaged, r"corrupt JPEG stream \(JPEG Baseline \(Process 1\)\): pylibjpeg: libjpeg error code "
                          r"'-\d+' returned from Decode\(\): [^\n]+$"):
        images.verify_image(damaged)


def test_a_dicom_without_a_transfer_syntax_is_refused_by_name(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.file_meta.TransferSyntaxUID
    path = tmp_path / "no_syntax.dcm"
    ds.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    with refused(path, r"cannot decode pixel data \(unknown transfer syntax\): .*'Transfer Syntax UID'"):
        read_image(path)


def test_a_voi_lut_item_without_its_data_falls_back_to_the_window(tmp_path):
    """A VOI LUT Sequence item with a descriptor but no LUT Data is no LUT: the window applies (pydicom's
    apply_windowing as oracle, scaled from the 12-bit stored range)."""
    from pydicom.pixels import apply_windowing

    pixels = (np.arange(48).reshape(6, 8) * 85) % 4096
    lut = Dataset()
    lut.add_new(0x00283002, "US", [4096, 0, 10])
    path = write_dicom(tmp_path / "no_data.dcm", pixels, WindowCenter="1500", WindowWidth="1000", VOILUTSequence=[lut])
    ds = pydicom.dcmread(path)
    expected = to8(apply_windowing(ds.pixel_array.astype(np.float64), ds), 0, 2**12 - 1)
    np.testing.assert_array_equal(read_image(path), expected)


def test_an_8_bit_png_under_minmax_is_stretched_to_its_own_range(tmp_path):
    grey = np.linspace(10, 200, 64).round().astype(np.uint8).reshape(8, 8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_image(tmp_path / "grey.png", scaling="minmax"), to8(grey, 10, 200))
    np.testing.assert_array_equal(read_image(tmp_path / "grey.png"), grey)


def test_header_check_counts_one_sample_per_pixel_when_the_tag_is_absent(tmp_path):
    path = write_dicom(tmp_path / "no_samples.dcm", np.arange(12).reshape(3, 4))
    ds = pydicom.dcmread(path)
    del ds.SamplesPerPixel
    ds.save_as(path)
    assert "SamplesPerPixel" not in images.read_dicom_header(path)


def test_header_check_of_a_native_dicom_without_columns_leaves_the_refusal_to_the_reader(tmp_path):
    """Rows x Columns can only be checked against the declared length when both are there; without Columns the
    header check passes (the length fits in the file) and reading refuses the file by name."""
    path = write_dicom(tmp_path / "no_columns.dcm", np.arange(12).reshape(3, 4))
    ds = pydicom.dcmread(path)
    del ds.Columns
    ds.save_as(path)
    assert images.read_dicom_header(path).Rows == 3
    with pytest.raises(DataError, match="no_columns.dcm: DICOM lacks Columns, needed to decode the pixels"):
        read_image(path)


def test_a_pinned_plugin_that_does_not_handle_the_transfer_syntax_is_passed_over_without_a_warning(caplog,
                                                                                                  monkeypatch):
    """Pillow does not decode JPEG-LS at all: pydicom chooses among the other plugins from the start, so there is
    no failed attempt and no fallback warning (that warning is for a plugin that claims the syntax and fails)."""
    pytest.importorskip("pylibjpeg")
    monkeypatch.setattr(images, "_FALLBACKS_REPORTED", set())
    path = get_testdata_file("JPEGLSNearLossless_16.dcm")
    ts = pydicom.dcmread(path).file_meta.TransferSyntaxUID
    assert "pillow" not in pydicom.pixels.get_decoder(ts).available_plugins
    np.testing.assert_array_equal(read_image(path), read_image(path, dicom_plugin="pylibjpeg"))
    assert not [r for r in caplog.records if r.name == "jaxprobe.data.images"]
    assert not images._FALLBACKS_REPORTED


def test_an_unknown_scaling_is_refused_whole(tmp_path):
    with pytest.raises(ValueError, match=r"^scaling must be 'range' or 'minmax', got 'percentile'$"):
        read_image(write_dicom(tmp_path / "a.dcm", np.zeros((2, 2))), scaling="percentile")
