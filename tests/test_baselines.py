"""Trivial baselines against scikit-learn: constant score, training mean, empty / all-foreground / prior masks."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, jaccard_score, mean_squared_error, r2_score, roc_auc_score

from jaxprobe import baselines, tables, tasks


class Store:
    """What the baselines read of an embedding store: masks by row and the stored targets."""

    def __init__(self, masks=None, targets=None):
        self._masks, self._targets = masks, targets or {}

    def masks(self, rows):
        return self._masks[np.asarray(rows)]

    def mask_rows(self):
        return self._masks

    def targets(self):
        return self._targets


def test_classification_constant_score():
    rng = np.random.default_rng(0)
    labels = (rng.random(60) < 0.3).astype(np.int64)
    labels[:2] = [0, 1]
    test = np.arange(20, 60)
    got = baselines.for_encoder(tasks.get("classification"), Store(targets={"label": labels}), "label",
                                np.arange(20), test, ["auroc", "auprc"])
    constant = np.zeros(len(test))
    assert got["constant"]["auroc"] == pytest.approx(roc_auc_score(labels[test], constant))
    assert got["constant"]["average_precision"] == pytest.approx(average_precision_score(labels[test], constant))


def test_regression_training_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 0.1, 50)
    train, test = np.arange(30), np.arange(30, 50)
    got = baselines.for_encoder(tasks.get("regression"), Store(targets={"ctr": values}), "ctr", train, test,
                                ["r2", "mse"])["train_mean"]
    prediction = np.full(len(test), values[train].mean())
    # the stored targets are float32, as the heads train on them
    assert got["r2"] == pytest.approx(r2_score(values[test], prediction), rel=1e-5)
    assert got["mse"] == pytest.approx(mean_squared_error(values[test], prediction), rel=1e-5)
    assert got["r2"] <= 0


def test_segmentation_masks():
    rng = np.random.default_rng(2)
    masks = np.zeros((30, 12, 12), bool)
    for i in range(30):  # a blob that moves a little around the same place
        r, c = rng.integers(3, 6, size=2)
        masks[i, r:r + 4, c:c + 5] = True
    train, test = np.arange(20), np.arange(20, 30)
    got = baselines.for_encoder(tasks.get("segmentation"), Store(masks=masks), "pneumothorax", train, test,
                                ["dice", "iou"])
    prior = masks[train].mean(0) >= 0.5
    for name, pred in {"all_foreground": np.ones((12, 12), bool), "location_prior": prior}.items():
        dice = np.mean([f1_score(masks[i].ravel(), pred.ravel()) for i in test])
        iou = np.mean([jaccard_score(masks[i].ravel(), pred.ravel()) for i in test])
        assert got[name]["dice"] == pytest.approx(dice) and got[name]["iou"] == pytest.approx(iou)
    assert got["empty"]["dice"] == 0.0  # the default rule: an empty prediction of a non-empty mask scores 0
    assert got["location_prior"]["dice"] > got["all_foreground"]["dice"]


def test_baselines_appear_in_table_2():
    per_encoder = {"a": {"constant": {"auroc": 0.5}}, "b": {"constant": {"auroc": 0.5}}}
    analysis = {"task": "t", "scenario": "linear probe", "settings": {"ci_level": 0.95, "point_estimate": "full_sample",
                                                                       "n_resamples": 10},
                "models": ["a", "b"], "display_names": {"a": "A", "b": "B"},
                "metrics": {"auroc": {"display": "AUROC", "models": {m: {"estimate": 0.9, "ci_low": 0.8, "ci_high": 1.0}
                                                                      for m in "ab"}}},
                "baselines": baselines.gather(per_encoder)}
    text = tables.table2_markdown([analysis])
    assert "| t | *baseline: constant score* | AUROC | *0.500* | *0.500* |" in text
