"""The predictions/ folder: what is written for a fitted head's test outputs, and reading it back."""
import csv
import json
import types

import numpy as np
import pytest

from jaxprobe import metrics as M
from jaxprobe import predictions
from jaxprobe.errors import PredictionFileError
from jaxprobe.train import TestPredictions


def fitted(loss, members=1):
    """What ``predictions.write`` reads of a FitResult."""
    records = [{"member": k, "seed": k, "learning_rate": 1e-4, "best_epoch": 3, "best_val_loss": 0.5 + k,
                "epochs_trained": 7, "early_stopped": True} for k in range(members)]
    return types.SimpleNamespace(name="t/enc/head", loss=loss, config={"patience": 4}, members=records,
                                 history={"train_loss": [[1.0]], "val_loss": [[0.5]]})


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def mask_predictions():
    counts = np.array([[[3, 0, 0, 5]], [[4, 0, 1, 5]], [[6, 0, 0, 5]]], np.int64)  # intersection, pred, true
    return TestPredictions(np.array(["a", "b", "c,d", "e"]), np.array([[0.25, 0.5, 0.75, 1.0]], np.float32),
                           *counts)


def test_mask_files_and_summary(tmp_path):
    test = mask_predictions()
    summary = predictions.write(tmp_path, "enc", fitted("bce"), test, empty_mask_rule="one")
    path = predictions.scores_file(tmp_path, "enc", "mask")
    assert path == tmp_path / "predictions" / "enc" / "member0" / "segmentation.csv"
    assert read_csv(path) == [["case_id", "intersection", "pred_area", "true_area"], ["a", "3", "4", "6"],
                              ["b", "0", "0", "0"], ["c,d", "0", "1", "0"], ["e", "5", "5", "5"]]
    # the summary scores an empty prediction of an empty mask by the rule it is given, as the statistics do
    member = summary["members"][0]
    assert member["metric"] == "dice" and member["test_mean_dice"] == pytest.approx((0.6 + 1 + 0 + 1) / 4)
    assert member["test_loss"] == 0.625 and member["best_epoch"] == 3
    assert json.loads(predictions.summary_file(tmp_path, "enc").read_text()) == summary
    assert list(summary) == ["name", "loss", "config", "n_test", "members", "spread", "history"]
    assert summary["spread"]["test_mean_dice"]["std"] == 0.0
    zero = predictions.write(tmp_path, "enc0", fitted("bce"), test, empty_mask_rule="zero")
    assert zero["members"][0]["test_mean_dice"] == pytest.approx((0.6 + 0 + 0 + 1) / 4)


def test_masks_stream_into_memory_maps_and_read_back_with_their_case_ids(tmp_path):
    masks = np.random.default_rng(0).random((2, 5, 3, 3)) > 0.5
    with predictions.MaskFiles(tmp_path, "enc", 5) as sink:
        sink(0, masks[:, :4])
        sink(4, masks[:, 4:])
    test = TestPredictions(np.array(list("vwxyz")), np.zeros((2, 5), np.float32),
                           *[np.zeros((2, 5), np.int64)] * 3)
    predictions.write(tmp_path, "enc", fitted("bce", members=2), test, empty_mask_rule="zero")
    for k in range(2):
        np.testing.assert_array_equal(np.load(predictions.masks_file(tmp_path, "enc", k)), masks[k])
    ids, loaded = predictions.load_masks(tmp_path, "enc", member=1)
    assert ids == list("vwxyz") and isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, masks[1])
    np.save(predictions.masks_file(tmp_path, "enc", 0), masks[0, :4])
    with pytest.raises(PredictionFileError, match="4 masks for the 5 cases"):
        predictions.load_masks(tmp_path, "enc")


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_scalar_files_and_headline_metrics_from_jaxprobe_metrics(tmp_path, loss):
    rng = np.random.default_rng(1)
    y_true = (rng.random(30) > 0.5).astype(np.float64) if loss == "bce" else rng.normal(size=30)
    outputs = rng.normal(size=(2, 30)).astype(np.float32)
    test = TestPredictions(np.array([f"id{i:02d}" for i in range(30)]), np.ones((2, 30), np.float32),
                           outputs=outputs, y_true=y_true)
    summary = predictions.write(tmp_path, "enc", fitted(loss, members=2), test, empty_mask_rule="zero")
    for k in range(2):
        rows = read_csv(predictions.scores_file(tmp_path, "enc", "ranking", k))
        assert rows[0] == ["case_id", "y_true", "score"] and len(rows) == 31
        score = 1 / (1 + np.exp(-outputs[k].astype(np.float64))) if loss == "bce" else outputs[k]
        assert rows[1] == ["id00", repr(float(y_true[0])), repr(float(score[0]))]
        np.testing.assert_array_equal(np.load(predictions.logits_file(tmp_path, "enc", k)), outputs[k])
        if loss == "bce":
            assert summary["members"][k]["test_auroc"] == M.auroc(y_true, score)
            assert summary["members"][k]["test_auroc"] == pytest.approx(M.auroc(y_true, score), abs=1e-15)
        else:
            assert summary["members"][k]["test_r2"] == M.r2(y_true, score)


def test_undefined_headline_metrics_are_nan(tmp_path):
    one_class = TestPredictions(np.array(["a", "b"]), np.ones((1, 2), np.float32),
                                outputs=np.array([[0.1, 0.2]], np.float32), y_true=np.array([1.0, 1.0]))
    summary = predictions.write(tmp_path, "cls", fitted("bce"), one_class, empty_mask_rule="zero")
    assert np.isnan(summary["members"][0]["test_auroc"])
    constant = TestPredictions(np.array(["a", "b"]), np.ones((1, 2), np.float32),
                               outputs=np.array([[0.1, 0.2]], np.float32), y_true=np.array([0.5, 0.5]))
    summary = predictions.write(tmp_path, "reg", fitted("mse"), constant, empty_mask_rule="zero")
    assert np.isnan(summary["members"][0]["test_r2"])


def test_a_run_folder_reads_back_by_encoder(tmp_path):
    test = mask_predictions()
    for name in ("enc_a", "enc_b"):
        predictions.write(tmp_path, name, fitted("bce"), test, empty_mask_rule="zero")
        predictions.write_head(tmp_path, name, {"store": f"/stores/{name}"})
    loaded = predictions.load_run(tmp_path, ["enc_a", "enc_b"], "mask")
    assert loaded.case_ids == ["a", "b", "c,d", "e"] and loaded.y_true is None
    np.testing.assert_array_equal(loaded.predictions["enc_b"].pred_area, [4, 0, 1, 5])
    assert predictions.read_head(tmp_path, "enc_b") == {"store": "/stores/enc_b"}
    with pytest.raises(PredictionFileError, match="prediction file not found"):
        predictions.load_run(tmp_path, ["enc_a", "missing"], "mask")
    with pytest.raises(PredictionFileError, match="head.json: not found"):
        predictions.read_head(tmp_path, "missing")


def test_inconsistent_counts_name_their_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("case_id,intersection,pred_area,true_area\na,5,4,6\n")
    with pytest.raises(PredictionFileError, match=r"bad.csv: intersection exceeds an area"):
        predictions.load_predictions("mask", {"m": str(path)})
    assert issubclass(PredictionFileError, ValueError)
