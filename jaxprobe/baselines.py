"""Trivial baselines: what a head must beat to have learnt anything from the embeddings.

Each is scored on the same test cases with the same metric implementation (``jaxprobe.metrics``) and the
config's settings (empty-mask rule, mask threshold, AUPRC variant), from the targets alone:

* classification — a constant score (AUROC 0.5, AUPRC = the test set's prevalence);
* regression — the training set's mean as every prediction (R² ≤ 0);
* segmentation — the empty mask, the all-foreground mask, and the location prior: every pixel that is
  foreground in at least half of the training masks (the best a head that ignores the image can do on
  average). Masks live on each encoder's grid, so segmentation baselines are given per encoder.
"""
from __future__ import annotations

import numpy as np

from . import metrics

DESCRIPTIONS = {
    "constant": "constant score",
    "train_mean": "training mean",
    "empty": "empty mask",
    "all_foreground": "all-foreground mask",
    "location_prior": "location prior",
}
DEFINITIONS = {
    "constant": "the same score for every case",
    "train_mean": "the training set's mean value predicted for every case",
    "empty": "no foreground pixel",
    "all_foreground": "every pixel foreground",
    "location_prior": "the pixels that are foreground in at least half of the training masks, for every case",
}
_CHUNK = 256


def _metric_values(metric_names, y_true, prediction, *, pr_auc: str, empty_mask_rule: str) -> dict[str, float]:
    out = {}
    for name in metric_names:
        info = metrics.resolve_metric(name, pr_auc)
        out[info.name] = metrics.point_estimate(info.name, y_true, prediction, empty_mask_rule=empty_mask_rule)
    return out


def _mean_mask(store, rows: np.ndarray) -> np.ndarray:
    total = None
    for s in range(0, len(rows), _CHUNK):
        part = store.masks(np.sort(rows[s:s + _CHUNK])).sum(axis=0, dtype=np.int64)
        total = part if total is None else total + part
    return total / max(len(rows), 1)


def for_encoder(task, store, target: str, train_rows, test_rows, metric_names, *, pr_auc: str = "average_precision",
                empty_mask_rule: str = "zero") -> dict[str, dict[str, float]]:
    """``{baseline: {metric: value}}`` on ``test_rows`` of one encoder's store."""
    train_rows, test_rows = np.asarray(train_rows, np.int64), np.asarray(test_rows, np.int64)
    kw = {"pr_auc": pr_auc, "empty_mask_rule": empty_mask_rule}
    if task.target_kind == "mask":
        true = store.masks(test_rows)
        candidates = {"empty": np.zeros(true.shape[1:], bool), "all_foreground": np.ones(true.shape[1:], bool),
                      "location_prior": _mean_mask(store, train_rows) >= 0.5}
        out = {}
        for name, mask in candidates.items():  # binary masks: the probability threshold does not apply
            stats = metrics.mask_statistics(np.broadcast_to(mask, true.shape), true)
            out[name] = _metric_values(metric_names, None, stats, **kw)
        return out
    values = np.asarray(task.probe_targets(store, target), np.float64)
    y_true = values[test_rows]
    if task.target_kind == "label":
        return {"constant": _metric_values(metric_names, y_true, np.zeros(len(y_true)), **kw)}
    mean = float(values[train_rows].mean())
    return {"train_mean": _metric_values(metric_names, y_true, np.full(len(y_true), mean), **kw)}


def gather(per_encoder: dict[str, dict[str, dict[str, float]]]) -> dict:
    """results.json's ``baselines``: ``{baseline: {"description", "metrics": {metric: {encoder: value}}}}``."""
    out: dict = {}
    for encoder, baselines in per_encoder.items():
        for name, values in baselines.items():
            entry = out.setdefault(name, {"description": DESCRIPTIONS[name], "definition": DEFINITIONS[name],
                                          "metrics": {}})
            for metric, value in values.items():
                entry["metrics"].setdefault(metric, {})[encoder] = value
    return out
