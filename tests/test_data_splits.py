"""Patient-level splits: no leakage, seeded, fractions by patient, and user split files."""
import numpy as np
import pytest

from jaxprobe.data.errors import DataError
from jaxprobe.data.records import Record
from jaxprobe.data.splits import (balanced, leaking_patients, patient_splits, read_split_file, resolve_splits, split_records,
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


def test_without_a_split_file_the_fractions_and_seed_given_act():
    records = make_records(patients=40)
    for fractions, seed in (((0.5, 0.25, 0.25), 4), ((0.8, 0.0, 0.2), 0)):
        assignment = resolve_splits(records, fractions=fractions, seed=seed)
        assert assignment == patient_splits(records, fractions=fractions, seed=seed)
        patients = {s: len({r.patient_id for r in rs}) for s, rs in split_records(records, assignment).items()}
        assert patients == dict(zip(("train", "val", "test"), (round(40 * f) for f in fractions)))
    assert resolve_splits(records) == patient_splits(records, seed=0) != patient_splits(records, seed=1)
    assert resolve_splits(records, seed=5) != resolve_splits(records, seed=6)
    for fractions in ((0.5, 0.5), (1.2, -0.2, 0.0)):
        with pytest.raises(ValueError, match=r"three non-negative numbers .* summing to 1, got \("):
            patient_splits(records, fractions=fractions)


def test_leaking_patients_are_reported_with_their_splits_and_logged(tmp_path, caplog):
    records = [Record("test", f"im{i}", f"/x/{i}.png", p, 0, 8, 8)
               for i, p in enumerate(["a", "a", "b", "b", "c", "c", "c"])]
    assignment = {"im0": "train", "im1": "test", "im2": "val", "im3": "val", "im4": "train", "im5": "val",
                  "im6": "test"}
    assert leaking_patients(records, assignment) == {"a": {"train", "test"}, "c": {"train", "val", "test"}}
    path = tmp_path / "leaky.csv"
    path.write_text("image_id,split\n" + "".join(f"{k},{v}\n" for k, v in assignment.items()) + "im0,train\n")
    with caplog.at_level("WARNING"):
        assert resolve_splits(records, split_file=path) == assignment  # a repeated, agreeing row is fine
    assert f"{path}: 2 patient(s) have images in several splits, e.g. ['a', 'c']" in caplog.text
    path.write_text("id,fold\nim0,train\nim1,test\nim0,val\n")
    with pytest.raises(DataError, match=rf"^{path}:4: image im0 is in both train and val$"):
        resolve_splits(records[:2], split_file=path, image_id_column="id", split_column="fold")


def test_balanced_keeps_the_minority_and_draws_distinct_majority_cases():
    labels = [1, 0, 0, 1, 0, 0, 0, 0, 1, 0]
    chosen = balanced(labels, seed=3)
    assert [labels[i] for i in chosen].count(1) == 3 == [labels[i] for i in chosen].count(0)
    assert chosen == sorted(set(chosen)) and {0, 3, 8} <= set(chosen)
    assert balanced(labels) == balanced(labels, seed=0)
    assert len({tuple(balanced(labels, seed=s)) for s in range(20)}) > 1  # the seed acts
    assert balanced([1, 0, 1, 0]) == [0, 1, 2, 3]  # equal classes: every case
    many = [0] * 40 + [1] * 39
    assert sorted(balanced(many, seed=1)) == balanced(many, seed=1) and len(set(balanced(many, seed=1))) == 78
    with pytest.raises(DataError, match=r"^balance: labels must be 0 or 1 to balance a cohort, got \[0, 1, 2\]$"):
        balanced([0, 1, 2])
    with pytest.raises(DataError, match=r"^balance: cannot balance a cohort with 0 positives and 3 negatives$"):
        balanced([0, 0, 0])


def test_written_splits_name_their_columns_and_can_be_rewritten(tmp_path):
    records = make_records(patients=3)
    assignment = patient_splits(records, seed=0)
    path = tmp_path / "run" / "splits.csv"
    write_splits(path, records, assignment)
    write_splits(path, records, assignment)  # the folder exists now
    lines = path.read_text().splitlines()
    assert lines[0] == "image_id,patient_id,split"
    first = min(records, key=lambda r: r.image_id)
    assert lines[1] == f"{first.image_id},{first.patient_id},{assignment[first.image_id]}"
