"""Extraction reads prepared datasets: the same embeddings, masks and targets as reading the original files."""
import sys

import numpy as np
import pytest

from jaxprobe import encoders
from jaxprobe.data import cardiomegaly_records, classification_set, siim_records
from jaxprobe.data import tfds as prepared
from jaxprobe.data.loaders import prepared_loader
from jaxprobe.embed.prepared import extract_prepared
from jaxprobe.embed.records import extract_records


def _tiny_encoder():
    return encoders.load("biomedclip", width=32, depth=1, proj_dim=16, input_size=32, seed=3)


def _same_store_contents(ours, theirs, with_masks):
    assert ours.ids == theirs.ids and ours.path != theirs.path
    np.testing.assert_array_equal(ours.global_embeddings, theirs.global_embeddings)
    np.testing.assert_array_equal(ours.patches, theirs.patches)
    if with_masks:
        np.testing.assert_array_equal(ours.array("masks"), theirs.array("masks"))
    for key, values in theirs.targets().items():
        np.testing.assert_array_equal(ours.targets()[key], values, err_msg=key)


def test_siim_embeddings_from_prepared_equal_those_from_the_dicoms(tmp_path):
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401
    builder = prepared.prepare("siim_acr_pneumothorax", config={"synthetic": True, "synthetic_n": 24,
                               "synthetic_size": 96}, data_dir=tmp_path / "tfds", workers=0, progress=False)
    records = {r.image_id: r for r in siim_records(builder.info.metadata["origin"])}
    rows = prepared.example_index(builder)["train"]
    chosen = classification_set([records[r.image_id] for r in rows], seed=1)
    encoder = _tiny_encoder()
    options = dict(batch_size=4, chunk_size=8, workers=3, progress=False, log=lambda message: None)
    ours = extract_prepared(encoder, builder, "train", tmp_path / "stores", name="siim", task="classification",
                            seed=1, mask="pneumothorax", **options)
    theirs = extract_records(encoder, chosen, tmp_path / "stores", name="siim", mask="pneumothorax", **options)
    assert ours.n == len(chosen) >= 4 and ours.targets()["label"].sum() == len(chosen) // 2
    _same_store_contents(ours, theirs, with_masks=True)
    assert ours.array("masks").any()
    again = extract_prepared(encoder, builder, "train", tmp_path / "stores", name="siim", task="classification",
                             seed=1, mask="pneumothorax", **options)
    assert again.path == ours.path  # reused, not re-embedded
    assert "tensorflow" not in sys.modules


def test_cardiomegaly_embeddings_and_ctr_from_prepared_equal_those_from_the_pngs(tmp_path):
    builder = prepared.prepare("cxr_cardiomegaly", config={"synthetic": True, "synthetic_n": 16,
                               "synthetic_size": 80}, data_dir=tmp_path / "tfds", workers=0, progress=False)
    origin = builder.info.metadata["origin"]
    records = {r.image_id: r for r in cardiomegaly_records(f"{origin}/manifest.csv", f"{origin}/chexmask.csv")}
    in_test = [records[r.image_id] for r in prepared.example_index(builder)["test"]]
    encoder = _tiny_encoder()
    options = dict(batch_size=4, chunk_size=8, workers=2, progress=False, log=lambda message: None)
    ours = extract_prepared(encoder, builder, "test", tmp_path / "stores", name="cardio", mask="heart", **options)
    theirs = extract_records(encoder, in_test, tmp_path / "stores", name="cardio", mask="heart", **options)
    _same_store_contents(ours, theirs, with_masks=True)
    assert np.isfinite(ours.targets()["ctr"]).all()


def test_loader_names_an_unknown_mask(tmp_path):
    builder = prepared.prepare("siim_acr_pneumothorax", config={"synthetic": True, "synthetic_n": 4,
                               "synthetic_size": 64}, data_dir=tmp_path, workers=0, progress=False)
    load = prepared_loader(builder.as_data_source("train"), _tiny_encoder().spec, mask="heart")
    with pytest.raises(KeyError, match="pneumothorax"):
        load(0)
