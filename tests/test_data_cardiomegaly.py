"""Cardiomegaly source (manifest + CheXmask), the NIH adapter, and CTR on masks with known extents."""
import csv
import gzip
import logging

import numpy as np
import pytest
from PIL import Image

from jaxprobe.data.cardiomegaly import cardiomegaly_records, nih_cardiomegaly_records
from jaxprobe.data.ctr import ctr, horizontal_extent
from jaxprobe.data.errors import DataError
from jaxprobe.data.synth import make_synthetic

from test_data_rle import chexmask_encode_reference

CHEXMASK_HEADER = ["Image Index", "Dice RCA (Mean)", "Dice RCA (Max)", "Landmarks", "Left Lung", "Right Lung",
                   "Heart", "Height", "Width"]


def box(shape, rows, cols):
    mask = np.zeros(shape, bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


def test_ctr_on_known_extents():
    shape = (50, 100)
    right = box(shape, (5, 40), (10, 45))  # viewer's left
    left = box(shape, (5, 40), (55, 90))
    heart = box(shape, (25, 45), (40, 60))  # columns 40..59: 20 wide; union spans 10..89: 80 wide
    assert horizontal_extent(heart) == 20 and horizontal_extent(heart | left | right) == 80
    assert ctr(heart, left, right) == pytest.approx(0.25)
    gap_heart = box(shape, (25, 45), (40, 45)) | box(shape, (25, 45), (55, 60))  # extent, not occupied columns
    assert ctr(gap_heart, left, right) == pytest.approx(20 / 80)
    wide_heart = box(shape, (25, 45), (0, 95))  # heart wider than the lungs: denominator is the union
    assert ctr(wide_heart, left, right) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"^heart mask is empty; CTR is undefined$"):
        ctr(np.zeros(shape, bool), left, right)
    with pytest.raises(ValueError, match=r"^heart \(50, 100\), left lung \(10, 100\) and right lung \(50, 100\) differ in shape$"):
        ctr(heart, left[:10], right)
    with pytest.raises(ValueError, match=r"^mask must be 2-D \[H, W\], got shape \(2, 50, 100\)$"):
        horizontal_extent(np.stack([heart, left]))


def write_set(tmp_path, *, height=40, width=30, rows=None, gz=False):
    """Two PNGs with a manifest and a CheXmask CSV whose masks are encoded here; returns paths and masks."""
    (tmp_path / "img").mkdir()
    masks = {}
    manifest = [["image_id", "path", "patient_id", "cardiomegaly"]]
    chexmask = [CHEXMASK_HEADER]
    for i, (heart_cols, label) in enumerate([((10, 16), "0"), ((7, 21), "1")]):
        name = f"im{i}.png"
        Image.fromarray(np.full((height, width), 100, np.uint8)).save(tmp_path / "img" / name)
        heart = box((height, width), (20, 30), heart_cols)
        right, left = box((height, width), (5, 25), (3, 13)), box((height, width), (5, 25), (16, 27))
        masks[name] = (heart, left, right)
        manifest.append([name, f"img/{name}", f"p{i}", label])
        chexmask.append([name, "0.9", "0.95", "", chexmask_encode_reference(left & ~heart),
                         chexmask_encode_reference(right & ~heart), chexmask_encode_reference(heart), height, width])
    for index, row in (rows or {}).items():
        chexmask[index] = row
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows(manifest)
    chexmask_path = tmp_path / ("chexmask.csv.gz" if gz else "chexmask.csv")
    with (gzip.open(chexmask_path, "wt", newline="") if gz else open(chexmask_path, "w", newline="")) as f:
        csv.writer(f).writerows(chexmask)
    return tmp_path / "manifest.csv", chexmask_path, masks


@pytest.mark.parametrize("gz", [False, True])
def test_manifest_joined_with_chexmask(tmp_path, gz):
    manifest, chexmask, masks = write_set(tmp_path, gz=gz)
    records = cardiomegaly_records(manifest, chexmask)
    assert [(r.image_id, r.label, r.patient_id) for r in records] == [("im0.png", 0, "p0"), ("im1.png", 1, "p1")]
    for record in records:
        heart, left, right = masks[record.image_id]
        np.testing.assert_array_equal(record.mask("heart"), heart)
        np.testing.assert_array_equal(record.mask("left_lung"), left & ~heart)
        np.testing.assert_array_equal(record.mask("right_lung"), right & ~heart)
        assert (record.height, record.width) == (40, 30)
    assert records[0].ctr == pytest.approx(6 / 24) and records[1].ctr == pytest.approx(14 / 24)


def test_quality_filter_and_missing_rows_are_reported(tmp_path, caplog):
    low = [["im0.png", "0.65", "0.7", "", "", "", "1 3", 40, 30]]
    manifest, chexmask, _ = write_set(tmp_path, rows={1: low[0]})
    listing = tmp_path / "left_out.csv"
    with caplog.at_level(logging.WARNING, logger="jaxprobe.data"):
        records = cardiomegaly_records(manifest, chexmask, skipped_file=listing)
    assert [r.image_id for r in records] == ["im1.png"]
    assert "low mask quality" in caplog.text
    assert any(row["kind"] == "low_mask_quality" for row in csv.DictReader(open(listing)))
    assert len(cardiomegaly_records(manifest, chexmask, min_dice=0.6)) == 2
    with open(chexmask) as f:
        kept = f.readlines()[:2]
    chexmask.write_text("".join(kept))
    with caplog.at_level(logging.WARNING, logger="jaxprobe.data"):
        cardiomegaly_records(manifest, chexmask, min_dice=0.6)
    assert "no masks" in caplog.text


def test_height_width_swap_is_detected(tmp_path, caplog):
    manifest, chexmask, masks = write_set(tmp_path)
    text = chexmask.read_text().replace(",40,30", ",30,40", 1)  # first data row: Height/Width transposed
    chexmask.write_text(text)
    with caplog.at_level(logging.WARNING, logger="jaxprobe.data"):
        records = cardiomegaly_records(manifest, chexmask)
    assert [r.image_id for r in records] == ["im1.png"] and "height width swapped" in caplog.text
    fixed = cardiomegaly_records(manifest, chexmask, on_hw_swap="image_shape")
    np.testing.assert_array_equal(fixed[0].mask("heart"), masks["im0.png"][0])
    chexmask.write_text(text.replace(",30,40", ",31,40", 1))
    with pytest.raises(DataError, match=r"chexmask.csv:2.*31x40 differs"):
        cardiomegaly_records(manifest, chexmask)


def test_bad_input_names_file_and_row(tmp_path):
    manifest, chexmask, _ = write_set(tmp_path)
    good = chexmask.read_text()
    chexmask.write_text(good.replace("Heart,", "Hearts,"))
    with pytest.raises(DataError, match=r"chexmask.csv.*missing column.*Heart"):
        cardiomegaly_records(manifest, chexmask)
    lines = good.splitlines()
    lines[2] = lines[2].rsplit(",", 3)[0] + ",0 5,40,30"
    chexmask.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"chexmask.csv:3.*Heart of im1.png.*1-based"):
        cardiomegaly_records(manifest, chexmask)
    chexmask.write_text(good)
    manifest.write_text(manifest.read_text().replace("p1,1", "p1,maybe"))
    with pytest.raises(DataError, match=r"manifest.csv:3.*'maybe'"):
        cardiomegaly_records(manifest, chexmask)
    manifest.write_text(manifest.read_text().replace("p1,maybe", "p1,1"))
    (tmp_path / "img" / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="im1.png"):
        cardiomegaly_records(manifest, chexmask)
    records = cardiomegaly_records(manifest, chexmask, on_error="skip", skipped_file=tmp_path / "s.csv")
    assert [r.image_id for r in records] == ["im0.png"]


def test_nih_adapter(tmp_path):
    root = tmp_path / "nih"
    (root / "images_001" / "images").mkdir(parents=True)
    rows = [["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "View Position"],
            ["00000001_000.png", "Cardiomegaly|Effusion", "0", "1", "PA"],
            ["00000001_001.png", "No Finding", "1", "1", "PA"],
            ["00000001_002.png", "No Finding", "2", "1", "AP"],  # not the paper's view: left out and listed
            ["00000002_000.png", "Cardiomegaly", "0", "2", "PA"]]  # no image file: reported
    with open(root / "Data_Entry_2017.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    heart = box((32, 32), (18, 26), (12, 22))
    lung_r, lung_l = box((32, 32), (4, 24), (2, 14)), box((32, 32), (4, 24), (18, 30))
    table = [CHEXMASK_HEADER]
    for name in ("00000001_000.png", "00000001_001.png", "00000001_002.png"):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "images_001" / "images" / name)
    for name in ("00000001_000.png", "00000001_001.png", "00000001_002.png", "00000002_000.png"):
        table.append([name, "0.8", "0.9", "", chexmask_encode_reference(lung_l), chexmask_encode_reference(lung_r),
                      chexmask_encode_reference(heart), 32, 32])
    with open(tmp_path / "ChestX-Ray8.csv", "w", newline="") as f:
        csv.writer(f).writerows(table)
    listing = tmp_path / "nih_left_out.csv"
    records = nih_cardiomegaly_records(root, tmp_path / "ChestX-Ray8.csv", skipped_file=listing, views=("PA",))
    assert [(r.image_id, r.label, r.patient_id) for r in records] == [("00000001_000.png", 1, "1"), ("00000001_001.png", 0, "1")]
    assert records[0].ctr == pytest.approx(10 / 28)
    assert sorted(row["kind"] for row in csv.DictReader(open(listing))) == ["label_without_image", "view_not_selected"]
    every_view = nih_cardiomegaly_records(root, tmp_path / "ChestX-Ray8.csv")
    assert [r.image_id for r in every_view] == ["00000001_000.png", "00000001_001.png", "00000001_002.png"]


def test_synthetic_set_through_the_loader(tmp_path):
    paths = make_synthetic(tmp_path, n=30, seed=4, size=96)
    listing = tmp_path / "left_out.csv"
    records = cardiomegaly_records(paths.cardiomegaly_manifest, paths.chexmask_csv, skipped_file=listing, views=("PA",))
    dropped = list(csv.DictReader(open(listing)))
    assert len(records) + len(dropped) == 30
    assert {r["kind"] for r in dropped} == {"low_mask_quality", "view_not_selected"}
    assert len(records) >= 20
    ctrs = np.array([r.ctr for r in records])
    assert 0.33 <= ctrs.min() and ctrs.max() <= 0.67
    assert [r.label for r in records] == [int(r.ctr > 0.5) for r in records]
    assert 0 < sum(r.label for r in records) < len(records)
    assert {(r.height, r.width) for r in records} == {(96, 86)}  # not square


@pytest.mark.parametrize("height", ["inf", "40.7", "nan", "-40"])
def test_chexmask_size_that_is_no_pixel_count_is_a_bad_row(tmp_path, height):
    """Height inf used to escape as OverflowError, 40.7 was truncated to 40 without a word."""
    manifest, chexmask, _ = write_set(tmp_path)
    lines = chexmask.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 2)[0] + f",{height},30"
    chexmask.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"chexmask.csv:3.*whole numbers of pixels"):
        cardiomegaly_records(manifest, chexmask)
    records = cardiomegaly_records(manifest, chexmask, on_error="skip", skipped_file=tmp_path / "s.csv")
    assert [r.image_id for r in records] == ["im0.png"]


def test_manifest_row_errors_follow_the_skip_policy(tmp_path):
    manifest, chexmask, _ = write_set(tmp_path)
    manifest.write_text(manifest.read_text().replace("p1,1", "p1,maybe"))
    with pytest.raises(DataError, match=r"manifest.csv:3.*'maybe'"):
        cardiomegaly_records(manifest, chexmask)
    records = cardiomegaly_records(manifest, chexmask, on_error="skip", skipped_file=tmp_path / "s.csv")
    assert [r.image_id for r in records] == ["im0.png"]
    assert "manifest.csv:3" in (tmp_path / "s.csv").read_text()


def test_empty_nih_patient_id_is_a_bad_row(tmp_path):
    """Images with an empty Patient ID used to form one patient "" and skew the patient-level split."""
    root = tmp_path / "nih"
    (root / "images").mkdir(parents=True)
    rows = [["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "View Position"],
            ["a.png", "Cardiomegaly", "0", "1", "PA"], ["b.png", "No Finding", "0", "", "PA"],
            ["c.png", "No Finding", "0", "", "PA"]]
    with open(root / "Data_Entry_2017.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    table = [CHEXMASK_HEADER]
    heart = box((32, 32), (18, 26), (12, 22))
    lung_r, lung_l = box((32, 32), (4, 24), (2, 14)), box((32, 32), (4, 24), (18, 30))
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "images" / name)
        table.append([name, "0.8", "0.9", "", chexmask_encode_reference(lung_l), chexmask_encode_reference(lung_r),
                      chexmask_encode_reference(heart), 32, 32])
    with open(tmp_path / "cm.csv", "w", newline="") as f:
        csv.writer(f).writerows(table)
    with pytest.raises(DataError, match=r"Data_Entry_2017.csv:3.*empty Patient ID for b.png"):
        nih_cardiomegaly_records(root, tmp_path / "cm.csv")
    records = nih_cardiomegaly_records(root, tmp_path / "cm.csv", on_error="skip", skipped_file=tmp_path / "s.csv")
    assert [r.image_id for r in records] == ["a.png"]


def test_ctr_from_the_runs_equals_the_ctr_of_the_drawn_masks():
    """The join reads each structure's first and last column from the RLE runs (no 1024 x 1024 mask drawn);
    on random shapes, including runs that wrap onto the next row, it gives the masks' CTR exactly."""
    from jaxprobe.data import rle
    from jaxprobe.data.ctr import ctr_from_columns

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(5, 40, size=2)
        masks = [rng.random((h, w)) < rng.uniform(0.01, 0.6) for _ in range(3)]
        masks[0][rng.integers(h), rng.integers(w)] = True  # the heart is never empty
        if rng.random() < 0.3:
            masks[1][:] = False  # an empty lung
        texts = [rle.encode_chexmask(m) for m in masks]
        spans = [rle.chexmask_columns(t, h, w) for t in texts]
        for m, span in zip(masks, spans):
            cols = np.flatnonzero(m.any(axis=0))
            assert span == ((int(cols[0]), int(cols[-1])) if cols.size else None)
        assert ctr_from_columns(*spans) == pytest.approx(ctr(*masks))
    with pytest.raises(ValueError, match=r"^heart mask is empty; CTR is undefined$"):
        ctr_from_columns(None, (0, 3), (5, 9))
    with pytest.raises(rle.RLEError, match="past the end"):
        rle.chexmask_columns("10 100", 3, 3)
