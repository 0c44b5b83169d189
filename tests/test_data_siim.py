"""SIIM-ACR source: a hand-made tree with the Kaggle quirks, bad input, and the synthetic set."""
import csv
import logging

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from jaxprobe.data.errors import DataError
from jaxprobe.data.images import read_image
from jaxprobe.data.siim import classification_set, segmentation_set, siim_records
from jaxprobe.data.synth import make_synthetic

from test_data_rle import siim_encode_reference


def write_dicom(path, sop, patient, rows=6, cols=10, pixel_data=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, sop
    if patient is not None:
        ds.PatientID = patient
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if pixel_data:
        ds.PixelData = np.arange(rows * cols, dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def tree(tmp_path):
    """Three labelled DICOMs (one with two overlapping rows), one unlabelled DICOM, one label without DICOM."""
    root = tmp_path / "siim"
    first = np.zeros((6, 10), bool)
    first[1:4, 2:5] = True
    second = np.zeros((6, 10), bool)
    second[3:6, 4:9] = True
    for sop, patient in [("1.1", "patient-a"), ("1.2", "patient-a"), ("1.3", "patient-b"), ("1.9", "patient-c")]:
        write_dicom(root / "dicom-images-train" / f"s{sop}" / f"r{sop}" / f"{sop}.dcm", sop, patient)
    lines = ["ImageId, EncodedPixels",
             f"1.1, {siim_encode_reference(first)}",
             "1.2, -1",
             f"1.1, {siim_encode_reference(second)}",
             "1.3, -1",
             "1.7, -1"]
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return root, first | second


def test_records_from_a_kaggle_style_tree(tree, caplog):
    root, expected_mask = tree
    with caplog.at_level(logging.WARNING, logger="jaxprobe.data"):
        records = siim_records(root)
    assert [r.image_id for r in records] == ["1.1", "1.2", "1.3"]
    by_id = {r.image_id: r for r in records}
    assert [by_id[i].label for i in ("1.1", "1.2", "1.3")] == [1, 0, 0]
    assert by_id["1.1"].patient_id == by_id["1.2"].patient_id == "patient-a"
    assert (by_id["1.1"].height, by_id["1.1"].width) == (6, 10)  # from Rows/Columns, not 1024
    np.testing.assert_array_equal(by_id["1.1"].mask(), expected_mask)
    assert not by_id["1.2"].mask().any()
    assert by_id["1.1"].path.endswith("1.1.dcm") and by_id["1.1"].ctr is None
    text = caplog.text
    assert "1 item(s) label without image" in text and "1.7" in text
    assert "1 item(s) image without label" in text and "1.9.dcm" in text


def test_skip_lists_bad_items_and_unmatched(tree, tmp_path, caplog):
    root, _ = tree
    broken = root / "dicom-images-train" / "s1.3" / "r1.3" / "1.3.dcm"
    data = broken.read_bytes()
    broken.write_bytes(data[:-20])  # truncated pixel data
    with pytest.raises(DataError, match=r"1\.3\.dcm.*truncated"):
        siim_records(root)
    listing = tmp_path / "skipped.csv"
    with caplog.at_level(logging.WARNING, logger="jaxprobe.data"):
        records = siim_records(root, on_error="skip", skipped_file=listing)
    assert [r.image_id for r in records] == ["1.1", "1.2"]
    rows = list(csv.DictReader(open(listing)))
    assert {(r["kind"], r["item"].split("/")[-1]) for r in rows} == {
        ("skipped", "1.3.dcm"), ("label_without_image", "1.7"), ("image_without_label", "1.9.dcm")}
    assert "1 item(s) skipped" in caplog.text
    with pytest.raises(ValueError, match="skipped_file"):
        siim_records(root, on_error="skip")


def test_verify_pixels_catches_corrupt_compressed_data(tmp_path):
    paths = make_synthetic(tmp_path, n=4, seed=0, size=64)
    records = siim_records(paths.siim_root)
    jpeg = next(r for r in records if pydicom.dcmread(r.path, stop_before_pixels=True).BitsAllocated == 8)
    data = bytearray(open(jpeg.path, "rb").read())
    start = data.find(b"\xff\xd8\xff")  # the JPEG stream's start: wipe its markers, keep the DICOM intact
    data[start : start + 200] = bytes(200)
    open(jpeg.path, "wb").write(bytes(data))
    assert len(siim_records(paths.siim_root)) == 4  # headers alone look fine
    listing = tmp_path / "bad.csv"
    kept = siim_records(paths.siim_root, verify_pixels=True, on_error="skip", skipped_file=listing)
    assert [r.image_id for r in kept] == [r.image_id for r in records if r.image_id != jpeg.image_id]
    assert jpeg.path in listing.read_text()


@pytest.mark.parametrize("problem, line, words", [
    ("1.1, 3 4 5", 2, "odd number"),
    ("1.2, 0 70", 3, "past the end"),
    ("1.2, 5 -2", 3, "length"),
])
def test_bad_rle_names_csv_line(tree, problem, line, words):
    root, _ = tree
    lines = (root / "train-rle.csv").read_text().splitlines()
    lines[line - 1] = problem
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"train-rle.csv:{line}.*{words}"):
        siim_records(root)


def test_contradictory_rows_missing_patient_and_columns(tree):
    root, _ = tree
    text = (root / "train-rle.csv").read_text()
    (root / "train-rle.csv").write_text(text + "1.2, 1 3\n")
    with pytest.raises(DataError, match="1.2 is both -1"):
        siim_records(root)
    (root / "train-rle.csv").write_text(text)
    write_dicom(root / "x" / "1.3.dcm", "1.3", None)  # duplicate stem
    with pytest.raises(DataError, match="1.3.dcm.*unique"):
        siim_records(root)
    (root / "x" / "1.3.dcm").unlink()
    write_dicom(root / "dicom-images-train" / "s1.3" / "r1.3" / "1.3.dcm", "1.3", None)
    with pytest.raises(DataError, match="1.3.dcm.*PatientID"):
        siim_records(root)
    (root / "train-rle.csv").write_text("ImageId,Mask\n1.1,-1\n")
    with pytest.raises(DataError, match=r"train-rle.csv.*missing column.*EncodedPixels"):
        siim_records(root)
    (root / "train-rle.csv").unlink()
    with pytest.raises(DataError, match="train-rle.csv"):
        siim_records(root)


def test_stage_2_file_name_and_unstripped_values(tree):
    root, expected = tree
    text = (root / "train-rle.csv").read_text().replace(", -1", ",-1")
    (root / "train-rle.csv").unlink()
    (root / "stage_2_train.csv").write_text(text.replace("ImageId, EncodedPixels", "ImageId,EncodedPixels"))
    records = siim_records(root)
    assert [r.label for r in records] == [1, 0, 0]
    np.testing.assert_array_equal(records[0].mask(), expected)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("synth"), n=24, seed=3, size=128, positive_fraction=0.25)


def test_synthetic_set_through_the_loader(synthetic):
    records = siim_records(synthetic.siim_root)
    assert len(records) == 24
    positives = [r for r in records if r.label]
    assert len(positives) == 6  # a quarter
    assert any(len(r.masks[0][1]) > 1 for r in positives)  # multi-row masks
    assert len({r.patient_id for r in records}) < 24  # some patients have several images
    headers = [pydicom.dcmread(r.path, stop_before_pixels=True) for r in records]
    assert {h.PhotometricInterpretation for h in headers} == {"MONOCHROME1", "MONOCHROME2"}
    for record, header in zip(records, headers):
        image = read_image(record.path)
        assert image.shape == (128, 128) == (record.height, record.width)
        spine, lung = image[50:70, 60:68].mean(), image[40:60, 30:40].mean()
        assert spine > lung + 30, (record.path, header.PhotometricInterpretation)  # right way round
        if record.label:
            mask = record.mask()
            assert mask.any() and image[mask].mean() < lung  # pneumothorax: darker than lung


def test_balanced_and_segmentation_sets(synthetic):
    records = siim_records(synthetic.siim_root)
    balanced = classification_set(records, seed=1)
    assert sum(r.label for r in balanced) == 6 and len(balanced) == 12
    assert [r.image_id for r in balanced] == [r.image_id for r in classification_set(records, seed=1)]
    assert [r.image_id for r in balanced] != [r.image_id for r in classification_set(records, seed=2)]
    assert all(r.label for r in segmentation_set(records)) and len(segmentation_set(records)) == 6


def test_the_label_file_read_is_named_with_the_papers_counts(synthetic, tmp_path, caplog):
    """A stage-2 CSV used to change the cohort silently (about 12,047 / 2,669 instead of 10,675 / 2,379)."""
    import logging
    import shutil

    root = tmp_path / "siim"
    shutil.copytree(synthetic.siim_root, root)
    with caplog.at_level(logging.INFO, logger="jaxprobe.data"):
        siim_records(root)
    assert "train-rle.csv (stage 1)" in caplog.text and "10675 images (2379 positive)" in caplog.text
    assert "stage-2" not in caplog.text
    (root / "train-rle.csv").rename(root / "stage_2_train.csv")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jaxprobe.data"):
        siim_records(root)
    assert "stage_2_train.csv (stage 2)" in caplog.text
    assert any(r.levelno == logging.WARNING and "stage-2 labels" in r.getMessage() for r in caplog.records)


def test_a_truncated_compressed_dicom_is_named_before_extraction(synthetic, tmp_path):
    """A truncated JPEG DICOM used to pass the header check and fail at embedding time with "has no PixelData
    element", even with on_error=skip."""
    import shutil

    from jaxprobe.data.images import read_dicom_header

    root = tmp_path / "siim"
    shutil.copytree(synthetic.siim_root, root)
    records = siim_records(root)
    victim = next(r for r in records
                  if pydicom.dcmread(r.path, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed)
    data = open(victim.path, "rb").read()
    open(victim.path, "wb").write(data[:len(data) * 2 // 3])
    with pytest.raises(DataError, match="truncated"):
        read_dicom_header(victim.path)
    with pytest.raises(DataError, match=victim.image_id):
        siim_records(root)
    kept = siim_records(root, on_error="skip", skipped_file=tmp_path / "skipped.csv", verify_pixels=True)
    assert victim.image_id not in {r.image_id for r in kept} and len(kept) == len(records) - 1
    assert victim.image_id in (tmp_path / "skipped.csv").read_text()


def test_a_jpeg_stream_with_zeroed_bytes_is_listed_when_pixels_are_verified(synthetic, tmp_path):
    """Pillow decodes a JPEG DICOM whose entropy-coded bytes were zeroed to changed pixels without a word;
    the verification decodes it with libjpeg too (pylibjpeg, the dicom extra), which reports the damage."""
    import shutil

    from jaxprobe.data.images import verify_image

    pytest.importorskip("pylibjpeg")
    root = tmp_path / "siim"
    shutil.copytree(synthetic.siim_root, root)
    records = siim_records(root)
    victim = next(r for r in records
                  if pydicom.dcmread(r.path, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed)
    data = bytearray(open(victim.path, "rb").read())
    scan = data.find(b"\xff\xda", data.find(b"\xff\xd8\xff"))
    middle = (scan + len(data)) // 2
    data[middle:middle + 256] = bytes(256)
    open(victim.path, "wb").write(bytes(data))
    read_image(victim.path)  # Pillow: no error, changed pixels
    with pytest.raises(DataError, match=r"corrupt JPEG stream"):
        verify_image(victim.path)
    kept = siim_records(root, on_error="skip", skipped_file=tmp_path / "skipped.csv", verify_pixels=True)
    assert victim.image_id not in {r.image_id for r in kept} and len(kept) == len(records) - 1
    assert "corrupt JPEG stream" in (tmp_path / "skipped.csv").read_text()
