"""Patient-level splits: no leakage, seeded, fractions by patient, and user split files."""
import numpy as np
import pytest

from jaxprobe.data.errors import DataError
from jaxprobe.data.records import Record
from jaxprobe.data.splits import (leaking_patients, patient_splits, read_split_file, resolve_splits, split_records,
                                  write_splits)


def make_records(patients=100, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for p in range(patients):
        for k in range(int(rng.integers(1, 5))):
            records.append(Record("test", f"img-{p}-{k}", f"/x/{p}-{k}.png", f"patient-{p}", int(rng.integers(0, 2)), 8, 8))
    return records


def test_no_patient_in_two_splits_and_patient_fractions():
    records = make_records()
    assignment = patient_splits(records, seed=7)
    assert set(assignment) == {r.image_id for r in records}
    assert leaking_patients(records, assignment) == {}
    per_split = {s: {r.patient_id for r in rs} for s, rs in split_records(records, assignment).items()}
    assert [len(per_split[s]) for s in ("train", "val", "test")] == [72, 8, 20]


def test_seeded_and_rounded_to_the_total():
    records = make_records(patients=37)
    assert patient_splits(records, seed=1) == patient_splits(records, seed=1)
    assert patient_splits(records, seed=1) != patient_splits(records, seed=2)
    counts = {s: len({r.patient_id for r in rs}) for s, rs in split_records(records, patient_splits(records)).items()}
    assert sum(counts.values()) == 37 and counts == {"train": 27, "val": 3, "test": 7}  # 26.64, 2.96, 7.4
    with pytest.raises(ValueError, match="sum"):
        patient_splits(records, fractions=(0.7, 0.1, 0.1))


def test_user_split_file_any_spelling(tmp_path):
    records = make_records(patients=4)
    spellings = ["Train", "VAL", "Validation", "test", "Testing", "valid", "training"]
    lines = ["image_id,split"] + [f"{r.image_id}, {spellings[i % len(spellings)]}" for i, r in enumerate(records)]
    (tmp_path / "mine.csv").write_text("\n".join(lines) + "\n")
    assignment = resolve_splits(records, split_file=tmp_path / "mine.csv", seed=123)
    expected = {"Train": "train", "VAL": "val", "Validation": "val", "test": "test", "Testing": "test",
                "valid": "val", "training": "train"}
    assert assignment == {r.image_id: expected[spellings[i % len(spellings)]] for i, r in enumerate(records)}


def test_user_split_file_errors(tmp_path):
    records = make_records(patients=3)
    path = tmp_path / "bad.csv"
    path.write_text("image_id,split\n" + "".join(f"{r.image_id},train\n" for r in records[1:]))
    with pytest.raises(DataError, match="bad.csv.*1 image"):
        resolve_splits(records, split_file=path)
    path.write_text("image_id,split\nimg-0-0,holdout-ish\n")
    with pytest.raises(DataError, match=r"bad.csv:2.*holdout-ish"):
        read_split_file(path)
    path.write_text("image,fold\nimg-0-0,train\n")
    with pytest.raises(DataError, match="missing column"):
        read_split_file(path)
    path.write_text("name,part\nimg-0-0,train\n")
    assert read_split_file(path, image_id_column="name", split_column="part") == {"img-0-0": "train"}


def test_written_splits_read_back(tmp_path):
    records = make_records(patients=20)
    assignment = patient_splits(records, seed=3)
    write_splits(tmp_path / "run" / "splits.csv", records, assignment)
    assert read_split_file(tmp_path / "run" / "splits.csv") == assignment
