"""Prepared TFDS datasets, built and read without TensorFlow, checked against the data module's own readers."""
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxprobe.data import (cardiomegaly_records, classification_set, patient_splits, read_image, segmentation_set,
                           siim_records)
from jaxprobe.data.cardiomegaly import nih_cardiomegaly_records
from jaxprobe.data.errors import DataError
from jaxprobe.data.splits import SPLITS, read_split_file
from jaxprobe.data.synth import make_cardiomegaly, make_siim
from jaxprobe.data import tfds as prepared

SIIM = {"synthetic": True, "synthetic_n": 30, "synthetic_size": 96}
CARDIO = {"synthetic": True, "synthetic_n": 30, "synthetic_size": 96}


def _prepare(dataset, config, data_dir, **options):
    options.setdefault("workers", 0)  # in-process decoding: the parallel path has its own test
    return prepared.prepare(dataset, config=config, data_dir=data_dir, progress=False, **options)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def siim(data_dir):
    return _prepare("siim_acr_pneumothorax", SIIM, data_dir)


@pytest.fixture(scope="module")
def cardio(data_dir):
    return _prepare("cxr_cardiomegaly", CARDIO, data_dir)


def _read_all(builder) -> dict[str, list[dict]]:
    sources = builder.as_data_source()
    return {split: [source[i] for i in range(len(source))] for split, source in sources.items()}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_against_records(builder, records, mask_names):
    """Every example equals its source record; every record is in exactly the split patient_splits gives it."""
    by_id = {r.image_id: r for r in records}
    assignment = patient_splits(records, seed=0)
    seen = []
    for split, examples in _read_all(builder).items():
        ids = [_text(e["image_id"]) for e in examples]
        assert ids == sorted(ids)  # image-id order within a split, as examples.csv lists them
        for example in examples:
            record = by_id[_text(example["image_id"])]
            assert assignment[record.image_id] == split
            image = example["image"]
            assert image.dtype == np.uint8 and image.shape == (record.height, record.width)
            np.testing.assert_array_equal(image, read_image(record.path))
            assert sorted(example["masks"]) == sorted(mask_names)
            for name in mask_names:
                assert example["masks"][name].dtype == np.bool_
                np.testing.assert_array_equal(example["masks"][name], record.mask(name))
            assert int(example["label"]) == record.label
            assert _text(example["patient_id"]) == record.patient_id
            assert _text(example["source_path"]) == record.path
            if record.ctr is not None:
                assert np.float32(example["ctr"]) == np.float32(record.ctr)
            seen.append(record.image_id)
    assert sorted(seen) == sorted(by_id)


def test_tensorflow_is_absent_and_never_imported(siim, cardio):
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401
    _read_all(siim)
    assert "tensorflow" not in sys.modules


def test_siim_examples_equal_source_records(siim):
    records = siim_records(siim.info.metadata["origin"])
    assert len(records) == 30 and any(r.label for r in records) and any(len(r.masks[0][1]) > 1 for r in records)
    _check_against_records(siim, records, ["pneumothorax"])
    assert {s.name for s in siim.info.splits.values()} == set(SPLITS)


def test_cardiomegaly_examples_equal_source_records(cardio):
    origin = Path(cardio.info.metadata["origin"])
    records = cardiomegaly_records(origin / "manifest.csv", origin / "chexmask.csv", views=("PA",))
    assert 0 < len(records) < 30  # the synthetic set has rows below the quality cut and AP films
    assert all(r.ctr is not None for r in records) and records[0].height != records[0].width
    _check_against_records(cardio, records, ["heart", "left_lung", "right_lung"])
    left_out = list(csv.DictReader(open(cardio.data_path / prepared.LEFT_OUT_FILE)))
    assert len(left_out) == 30 - len(records) == cardio.info.metadata["left_out"]
    assert {row["kind"] for row in left_out} == {"low_mask_quality", "view_not_selected"}


def test_no_patient_crosses_splits_and_metadata_records_the_split(siim, cardio):
    for builder in (siim, cardio):
        split_of_patient = {}
        for split, examples in _read_all(builder).items():
            for e in examples:
                assert split_of_patient.setdefault(_text(e["patient_id"]), split) == split
        meta = builder.info.metadata
        assert meta["splits"]["seed"] == 0 and meta["splits"]["fractions"] == [0.72, 0.08, 0.20]
        counts = {s: len(v) for s, v in builder.as_data_source().items()}
        assert counts == {s: meta["counts"][s]["images"] for s in SPLITS}


def test_example_index_lists_every_example_and_is_a_split_file(siim):
    index = prepared.example_index(siim)
    sources = siim.as_data_source()
    for split in SPLITS:
        assert [_text(sources[split][r.index]["image_id"]) for r in index[split]] == [r.image_id for r in index[split]]
    as_split_file = read_split_file(siim.data_path / prepared.INDEX_FILE)
    assert as_split_file == {r.image_id: r.split for rows in index.values() for r in rows}


def test_task_selection_matches_the_record_level_sets(siim):
    records = {r.image_id: r for r in siim_records(siim.info.metadata["origin"])}
    for split, rows in prepared.example_index(siim).items():
        in_split = [records[r.image_id] for r in rows]
        ids = lambda indices: [rows[i].image_id for i in indices]  # noqa: E731
        assert ids(prepared.select(rows, "segmentation")) == [r.image_id for r in segmentation_set(in_split)]
        assert ids(prepared.select(rows, "all")) == [r.image_id for r in in_split]
        if sum(r.label for r in in_split) <= len(in_split) - sum(r.label for r in in_split):
            for seed in (0, 5):
                assert ids(prepared.select(rows, "classification", seed=seed)) == \
                    [r.image_id for r in classification_set(in_split, seed=seed)]


def test_other_split_seed_is_another_dataset(siim, data_dir):
    other = _prepare("siim_acr_pneumothorax", {**SIIM, "split_seed": 1}, data_dir)
    assert other.builder_config.name == "synthetic-n30-size96-seed1" and other.data_path != siim.data_path
    records = siim_records(other.info.metadata["origin"])
    assignment = patient_splits(records, seed=1)
    assert assignment != patient_splits(records, seed=0)
    for split, rows in prepared.example_index(other).items():
        assert all(assignment[r.image_id] == split for r in rows)
    assert other.info.metadata["splits"]["seed"] == 1


def test_user_split_file_replaces_the_seeded_split(siim, data_dir, tmp_path):
    records = siim_records(siim.info.metadata["origin"])
    patients = sorted({r.patient_id for r in records})
    wanted = {r.image_id: SPLITS[patients.index(r.patient_id) % 3] for r in records}
    split_file = tmp_path / "my_splits.csv"
    with open(split_file, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "split"])
        writer.writerows(sorted(wanted.items()))
    built = _prepare("siim_acr_pneumothorax", {**SIIM, "split_file": split_file}, data_dir)
    assert built.builder_config.name.startswith("synthetic-n30-size96-splitfile")
    assert {r.image_id: r.split for rows in prepared.example_index(built).values() for r in rows} == wanted
    assert built.info.metadata["splits"]["method"] == "file"
    assert built.info.metadata["splits"]["file"] == str(split_file)


def _dataset_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_rebuild_with_same_seed_is_identical_and_parallel_decoding_agrees(tmp_path):
    config = {"synthetic": True, "synthetic_n": 16, "synthetic_size": 80}
    first = _prepare("siim_acr_pneumothorax", config, tmp_path)
    files = _dataset_files(first.data_path)
    assert not list((tmp_path / "downloads" / "jaxprobe_decoded").rglob("*.pkl"))  # cache removed when done
    shutil.rmtree(first.data_path)
    again = _prepare("siim_acr_pneumothorax", config, tmp_path, workers=2)
    assert again.data_path == first.data_path
    assert _dataset_files(again.data_path) == files  # array_record shards, index, metadata, info: byte for byte


def _corrupt(path: str) -> bytes:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) - 600])  # cuts into the JPEG pixel data; the header still reads
    return data


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")  # pydicom on the truncated file
def test_bad_image_is_skipped_and_listed_or_stops_the_run_which_resumes(tmp_path, caplog):
    manual = tmp_path / "manual"
    root, _ = make_siim(str(manual), n=12, seed=3, size=80, sixteen_bit_fraction=0.0)
    records = siim_records(root)
    bad = records[6]
    original = _corrupt(bad.path)

    skipped = _prepare("siim_acr_pneumothorax", "default", tmp_path / "skip", manual_dir=root, on_error="skip")
    rows = list(csv.DictReader(open(skipped.data_path / prepared.LEFT_OUT_FILE)))
    assert [(r["kind"], r["item"]) for r in rows] == [("skipped", bad.path)] and "truncated" in rows[0]["reason"]
    ids = [r.image_id for rows_ in prepared.example_index(skipped).values() for r in rows_]
    assert sorted(ids) == sorted(r.image_id for r in records if r is not bad)
    assert skipped.info.metadata["left_out"] == 1

    # a file whose header is whole but whose JPEG stream is garbage passes the scan and fails in decoding
    data = bytearray(original)
    soi = data.find(b"\xff\xd8\xff")
    data[soi + 2:len(data) - 16] = bytes(len(data) - 16 - soi - 2)
    Path(bad.path).write_bytes(bytes(data))
    with pytest.raises(DataError, match=bad.image_id):
        _prepare("siim_acr_pneumothorax", "default", tmp_path / "raise", manual_dir=root)
    cache = tmp_path / "raise" / "downloads" / "jaxprobe_decoded"
    assert len(list(cache.rglob("*.pkl"))) == 6  # the images before the bad one stay decoded
    assert not list((tmp_path / "raise" / "siim_acr_pneumothorax" / "default").glob("1.*.*"))

    Path(bad.path).write_bytes(original)
    with caplog.at_level(logging.INFO, logger="jaxprobe.data"):
        resumed = _prepare("siim_acr_pneumothorax", "default", tmp_path / "raise", manual_dir=root)
    assert "6 of 12 images already decoded" in caplog.text
    _check_against_records(resumed, siim_records(root), ["pneumothorax"])


def test_nih_layout_with_chexmask_table_in_original_resolution(tmp_path):
    manifest, chexmask = make_cardiomegaly(str(tmp_path / "src"), n=14, seed=2, size=72)
    nih = tmp_path / "nih"
    (nih / "images_001" / "images").mkdir(parents=True)
    (nih / "OriginalResolution").mkdir()
    (nih / "Preprocessed").mkdir()
    with open(manifest) as f, open(nih / "Data_Entry_2017.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "View Position"])
        for row in csv.DictReader(f):
            shutil.copy(Path(manifest).parent / row["path"], nih / "images_001" / "images" / row["image_id"])
            writer.writerow([row["image_id"], "Cardiomegaly|Effusion" if row["cardiomegaly"] == "1" else "No Finding",
                             0, row["patient_id"], row["view"]])
    shutil.copy(chexmask, nih / "OriginalResolution" / "ChestX-Ray8.csv")
    shutil.copy(chexmask, nih / "Preprocessed" / "ChestX-Ray8.csv")
    built = _prepare("cxr_cardiomegaly", "default", tmp_path / "tfds", manual_dir=nih)
    records = nih_cardiomegaly_records(nih, nih / "OriginalResolution" / "ChestX-Ray8.csv", views=("PA",))
    assert any(r.label for r in records)
    _check_against_records(built, records, ["heart", "left_lung", "right_lung"])


def test_missing_or_wrong_manual_dir_says_what_to_put_there(tmp_path):
    with pytest.raises(AssertionError, match="Data_Entry_2017.csv"):
        _prepare("cxr_cardiomegaly", "default", tmp_path / "a", manual_dir=tmp_path / "nothing_here")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "notes.txt").write_text("not a data set")
    with pytest.raises(DataError, match="neither a manifest"):
        _prepare("cxr_cardiomegaly", "default", tmp_path / "b", manual_dir=wrong)
    with pytest.raises(DataError, match="no SIIM-ACR label file"):
        _prepare("siim_acr_pneumothorax", "default", tmp_path / "c", manual_dir=wrong)


def test_stock_tfds_reads_the_dataset_without_jaxprobe(siim):
    features = json.loads((siim.data_path / "features.json").read_text())
    classes = set()

    def walk(node):
        if isinstance(node, dict):
            if "pythonClassName" in node:
                classes.add(node["pythonClassName"])
            for value in node.values():
                walk(value)
    walk(features)
    assert all(c.startswith("tensorflow_datasets.core.features.") for c in classes), classes
    script = (
        "import json, sys, numpy as np, tensorflow_datasets as tfds\n"
        f"b = tfds.builder_from_directory({str(siim.data_path)!r})\n"
        "s = b.as_data_source('test')\n"
        "out = [[e['image_id'].decode(), int(e['image'].astype(np.int64).sum()), int(e['masks']['pneumothorax'].sum())]"
        " for e in (s[i] for i in range(len(s)))]\n"
        "assert not [m for m in sys.modules if m.startswith('jaxprobe') or m == 'tensorflow']\n"
        "print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(sys.executable))
    assert done.returncode == 0, done.stderr[-2000:]
    test = siim.as_data_source("test")
    expected = [[_text(e["image_id"]), int(e["image"].astype(np.int64).sum()), int(e["masks"]["pneumothorax"].sum())]
                for e in (test[i] for i in range(len(test)))]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_registered_name_reads_through_tfds_data_source(siim, data_dir):
    import tensorflow_datasets as tfds

    sources = tfds.data_source(f"siim_acr_pneumothorax/{siim.builder_config.name}", data_dir=os.fspath(data_dir),
                               download=False)
    assert {s: len(v) for s, v in sources.items()} == {s: len(v) for s, v in siim.as_data_source().items()}


def test_command_line_prepares_once_and_reports(tmp_path, capsys):
    from jaxprobe.data.prepare import main

    argv = ["--dataset", "cxr_cardiomegaly", "--synthetic", "--synthetic-n", "12", "--synthetic-size", "72",
            "--split-seed", "2", "--data-dir", str(tmp_path), "--workers", "0"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    first = first[first.index("dataset: "):]  # before it, TFDS's own banner for a new build
    assert "config: synthetic-n12-size72-seed2" in first and "left out: 1" in first
    folder = tmp_path / "cxr_cardiomegaly" / "synthetic-n12-size72-seed2" / "1.1.0"
    stamp = (folder / "dataset_info.json").stat().st_mtime_ns
    assert main(argv) == 0  # prepared already: reused, not rebuilt
    assert capsys.readouterr().out == first and (folder / "dataset_info.json").stat().st_mtime_ns == stamp

    assert main(["--dataset", "siim_acr_pneumothorax", "--instructions"]) == 0
    assert "train-rle.csv" in capsys.readouterr().out
    assert main(["--dataset", "siim_acr_pneumothorax", "--data-dir", str(tmp_path)]) == 2
    assert "--manual-dir is required" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing")
    assert main(["--dataset", "siim_acr_pneumothorax", "--manual-dir", str(empty), "--data-dir", str(tmp_path)]) == 2
    assert "no SIIM-ACR label file" in capsys.readouterr().err


def test_config_names_spell_out_their_options():
    cls = prepared.SiimAcrPneumothorax
    assert cls.make_config().name == "default" and cls.make_config(synthetic=True).name == "synthetic"
    assert cls.make_config(split_seed=4, split_fractions=(0.7, 0.1, 0.2)).name == "default-seed4-f0.7_0.1_0.2"
    assert prepared.CxrCardiomegaly.make_config(min_dice=0.8).name == "default-mindice0.8"
    with pytest.raises(TypeError, match="min_dice"):
        cls.make_config(min_dice=0.8)
    with pytest.raises(ValueError, match="differ from the registered 'default'"):
        prepared.get_builder("siim_acr_pneumothorax", config=prepared.PreparedConfig(name="default", split_seed=5))


def test_unguarded_script_gets_told_why_its_workers_died(tmp_path):
    script = tmp_path / "prepare_without_main_guard.py"
    script.write_text(
        "from jaxprobe.data import tfds as prepared\n"
        f"prepared.prepare('siim_acr_pneumothorax', config={{'synthetic': True, 'synthetic_n': 4, "
        f"'synthetic_size': 64}}, data_dir={str(tmp_path / 'tfds')!r}, workers=2, progress=False)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode != 0
    assert "decoding worker process died" in done.stderr and 'if __name__ == "__main__":' in done.stderr


def test_kept_decode_cache_serves_another_split_variant(tmp_path, caplog):
    config = {"synthetic": True, "synthetic_n": 10, "synthetic_size": 64}
    _prepare("siim_acr_pneumothorax", config, tmp_path, keep_decoded=True)
    assert len(list((tmp_path / "downloads" / "jaxprobe_decoded").rglob("*.pkl"))) == 10
    with caplog.at_level(logging.INFO, logger="jaxprobe.data"):
        other = _prepare("siim_acr_pneumothorax", {**config, "split_seed": 7}, tmp_path)
    assert "10 of 10 images already decoded" in caplog.text
    records = siim_records(other.info.metadata["origin"])
    assignment = patient_splits(records, seed=7)
    assert all(assignment[r.image_id] == split for split, rows in prepared.example_index(other).items() for r in rows)
    assert not list((tmp_path / "downloads" / "jaxprobe_decoded").rglob("*.pkl"))
