"""Point metrics on a full test set: AUROC, average precision, trapezoidal PR area, R², MSE, Dice, IoU.

Everything here is exact float64 numpy and agrees with scikit-learn (see tests/test_metrics.py); the
bootstrap in `jaxprobe.bootstrap` computes the same quantities for many resamples at once.

Segmentation is summarised per case by three integers — intersection, predicted area, true area of the
binarised masks — so callers never have to keep full masks in memory. The Dice/IoU of a case whose
predicted and true masks are both empty is undefined; `empty_mask_rule` decides:

- ``"zero"``: 0, what scikit-learn's ``f1_score`` / ``jaccard_score`` return (the authors' code).
- ``"one"``: 1, a correct "nothing here" prediction counts as perfect.
- ``"exclude"``: NaN, and the case is left out of the mean.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

EmptyMaskRule = Literal["zero", "one", "exclude"]
EMPTY_MASK_RULES = ("zero", "one", "exclude")
PR_AUC_DEFINITIONS = ("average_precision", "trapezoid")


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    name: str           # key used in results.json
    display: str        # column header in tables and figures
    kind: str           # "ranking" (labels + scores), "mask" (per-case mask statistics), "regression"
    higher_is_better: bool
    definition: str     # one line written into results.json so readers know what was computed


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("auroc", "AUROC", "ranking", True,
                   "area under the ROC curve, ties count one half (scikit-learn roc_auc_score)"),
        MetricInfo("average_precision", "AUPRC (AP)", "ranking", True,
                   "average precision, step sum over thresholds (scikit-learn average_precision_score)"),
        MetricInfo("pr_auc_trapezoid", "AUPRC (trapezoid)", "ranking", True,
                   "trapezoidal area under the precision-recall curve, auc(recall, precision) as in the "
                   "authors' code"),
        MetricInfo("dice", "Dice", "mask", True, "mean over cases of per-case Dice of masks binarised at the threshold"),
        MetricInfo("iou", "IoU", "mask", True, "mean over cases of per-case IoU (Jaccard) of binarised masks"),
        MetricInfo("mse", "MSE", "regression", False, "mean squared error (scikit-learn mean_squared_error)"),
        MetricInfo("r2", "R²", "regression", True, "coefficient of determination (scikit-learn r2_score)"),
    )
}


def resolve_metric(name: str, pr_auc: str = "average_precision") -> MetricInfo:
    """Look up a metric by name; ``"auprc"`` resolves to the PR-area definition chosen by ``pr_auc``."""
    key = name.lower()
    if key == "auprc":
        if pr_auc not in PR_AUC_DEFINITIONS:
            raise ValueError(f"pr_auc must be one of {PR_AUC_DEFINITIONS}, got {pr_auc!r}")
        key = "average_precision" if pr_auc == "average_precision" else "pr_auc_trapezoid"
    if key not in METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {sorted(METRICS) + ['auprc']}")
    return METRICS[key]


# ---------------------------------------------------------------------------------------------
# Ranking metrics


def check_binary_labels(y_true, what: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {y.shape}")
    values = np.unique(y)
    if not np.all(np.isin(values, (0, 1))):
        raise ValueError(f"{what} must hold binary labels 0/1 (or booleans), found values {values[:10].tolist()}")
    if values.size < 2:
        raise ValueError(f"{what} holds only one class ({values.tolist()}); AUROC and AUPRC need positives "
                         "and negatives")
    return y.astype(np.int64)


def _scores(score, n: int) -> np.ndarray:
    s = np.asarray(score, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"score must have shape ({n},) to match y_true, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"score holds {int(np.sum(~np.isfinite(s)))} non-finite values")
    return s


def _descending_tie_groups(y: np.ndarray, s: np.ndarray):
    """True and false positives at each distinct threshold, highest threshold first."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[last_of_group].astype(np.float64)
    fps = (last_of_group + 1) - tps
    return tps, fps


def threshold_counts(y_true, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, true positives, false positives) at every distinct score, highest first, a case called
    positive when its score is at or above the threshold: what ROC and PR curves and an operating point read."""
    y, s = np.asarray(y_true).astype(bool), np.asarray(score, np.float64)
    thresholds = np.unique(s)[::-1]
    called = s[None, :] >= thresholds[:, None]
    return thresholds, (called & y).sum(1), (called & ~y).sum(1)


def auroc(y_true, score) -> float:
    """Area under the ROC curve; tied scores count one half (the Mann-Whitney statistic)."""
    y = check_binary_labels(y_true)
    s = _scores(score, y.size)
    tps, fps = _descending_tie_groups(y, s)
    # Trapezoids between consecutive ROC points are exactly the half-credit rule for ties.
    tpr = np.r_[0.0, tps] / tps[-1]
    fpr = np.r_[0.0, fps] / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _precision_recall(y_true, score):
    y = check_binary_labels(y_true)
    s = _scores(score, y.size)
    tps, fps = _descending_tie_groups(y, s)
    return tps / (tps + fps), tps / tps[-1]


def average_precision(y_true, score) -> float:
    """Average precision: sum over thresholds of (recall gain) × precision, no interpolation."""
    precision, recall = _precision_recall(y_true, score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def pr_auc_trapezoid(y_true, score) -> float:
    """Trapezoidal area under the precision-recall curve, starting from the point (recall 0, precision 1)."""
    precision, recall = _precision_recall(y_true, score)
    precision, recall = np.r_[1.0, precision], np.r_[0.0, recall]
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


# ---------------------------------------------------------------------------------------------
# Regression metrics


def _regression_inputs(y_true, y_pred):
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be one-dimensional and of equal length, got {y.shape} and {p.shape}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(p))):
        raise ValueError("y_true and y_pred must be finite")
    return y, p


def mse(y_true, y_pred) -> float:
    y, p = _regression_inputs(y_true, y_pred)
    return float(np.mean((y - p) ** 2))


def r2(y_true, y_pred) -> float:
    """1 − residual sum of squares / total sum of squares about the mean of y_true."""
    y, p = _regression_inputs(y_true, y_pred)
    total = np.sum((y - y.mean()) ** 2)
    if total == 0:
        raise ValueError("R² is undefined: y_true is constant")
    return float(1.0 - np.sum((y - p) ** 2) / total)


# ---------------------------------------------------------------------------------------------
# Segmentation metrics


@dataclasses.dataclass(frozen=True)
class MaskStatistics:
    """Per-case pixel counts of binarised masks: |P ∩ G|, |P| and |G| (each shape [n])."""

    intersection: np.ndarray
    pred_area: np.ndarray
    true_area: np.ndarray

    def __post_init__(self):
        arrays = [np.asarray(a) for a in (self.intersection, self.pred_area, self.true_area)]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or arrays[0].ndim != 1:
            raise ValueError(f"intersection, pred_area and true_area must be 1-D of equal length, got {shapes}")
        for name, a in zip(("intersection", "pred_area", "true_area"), arrays):
            if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a != np.round(a)):
                raise ValueError(f"{name} must hold non-negative whole pixel counts")
        i, p, t = arrays
        bad = np.flatnonzero((i > p) | (i > t))
        if bad.size:
            raise ValueError(f"intersection exceeds an area for case index {int(bad[0])} "
                             f"(intersection {i[bad[0]]}, pred_area {p[bad[0]]}, true_area {t[bad[0]]})")

    def __len__(self) -> int:
        return int(np.asarray(self.intersection).shape[0])

    def as_array(self) -> np.ndarray:
        """[n, 3] float64: intersection, predicted area, true area."""
        return np.stack([np.asarray(a, np.float64) for a in (self.intersection, self.pred_area, self.true_area)], 1)

    @classmethod
    def from_array(cls, stats) -> "MaskStatistics":
        a = np.asarray(stats)
        if a.ndim != 2 or a.shape[1] != 3:
            raise ValueError(f"mask statistics must have shape [n, 3] (intersection, pred_area, true_area), got {a.shape}")
        return cls(a[:, 0], a[:, 1], a[:, 2])


def binarise(mask, threshold: float = 0.5) -> np.ndarray:
    """Boolean masks stay as they are; probabilities become foreground where ``value > threshold``."""
    m = np.asarray(mask)
    return m if m.dtype == np.bool_ else m > threshold


def mask_statistics(pred, true, threshold: float = 0.5) -> MaskStatistics:
    """Per-case statistics of a batch of masks [n, ...]; ``pred`` may hold probabilities, ``true`` is binarised too."""
    p, t = binarise(pred, threshold), binarise(true, threshold)
    if p.shape != t.shape:
        raise ValueError(f"predicted masks {p.shape} and true masks {t.shape} differ in shape")
    if p.ndim < 2:
        raise ValueError(f"masks must be batched as [n, ...], got shape {p.shape}")
    p, t = p.reshape(p.shape[0], -1), t.reshape(t.shape[0], -1)
    return MaskStatistics(np.sum(p & t, axis=1), np.sum(p, axis=1), np.sum(t, axis=1))


def _check_rule(empty_mask_rule: str) -> None:
    if empty_mask_rule not in EMPTY_MASK_RULES:
        raise ValueError(f"empty_mask_rule must be one of {EMPTY_MASK_RULES}, got {empty_mask_rule!r}")


def _ratio_with_empty_rule(numerator, denominator, empty_mask_rule: str) -> np.ndarray:
    _check_rule(empty_mask_rule)
    both_empty = denominator == 0
    value = {"zero": 0.0, "one": 1.0, "exclude": np.nan}[empty_mask_rule]
    return np.where(both_empty, value, numerator / np.where(both_empty, 1.0, denominator))


def dice_from_statistics(stats: MaskStatistics, empty_mask_rule: EmptyMaskRule = "zero") -> np.ndarray:
    a = stats.as_array()
    return _ratio_with_empty_rule(2 * a[:, 0], a[:, 1] + a[:, 2], empty_mask_rule)


def iou_from_statistics(stats: MaskStatistics, empty_mask_rule: EmptyMaskRule = "zero") -> np.ndarray:
    a = stats.as_array()
    return _ratio_with_empty_rule(a[:, 0], a[:, 1] + a[:, 2] - a[:, 0], empty_mask_rule)


def dice(pred, true, empty_mask_rule: EmptyMaskRule = "zero", threshold: float = 0.5) -> np.ndarray:
    """Per-image Dice of a batch of masks [n, H, W] (NaN for excluded both-empty cases)."""
    return dice_from_statistics(mask_statistics(pred, true, threshold), empty_mask_rule)


def iou(pred, true, empty_mask_rule: EmptyMaskRule = "zero", threshold: float = 0.5) -> np.ndarray:
    """Per-image IoU of a batch of masks [n, H, W] (NaN for excluded both-empty cases)."""
    return iou_from_statistics(mask_statistics(pred, true, threshold), empty_mask_rule)


def mean_over_cases(per_case: np.ndarray) -> float:
    """Mean of per-case values, leaving out excluded (NaN) cases; NaN if every case is excluded."""
    kept = per_case[~np.isnan(per_case)]
    return float(kept.mean()) if kept.size else float("nan")


def point_estimate(metric: str, y_true, prediction, *, empty_mask_rule: EmptyMaskRule = "zero") -> float:
    """The metric on the full test set; ``prediction`` is scores, predicted values or MaskStatistics."""
    info = resolve_metric(metric)
    if info.kind == "mask":
        stats = prediction if isinstance(prediction, MaskStatistics) else MaskStatistics.from_array(prediction)
        per_case = (dice_from_statistics if info.name == "dice" else iou_from_statistics)(stats, empty_mask_rule)
        return mean_over_cases(per_case)
    function = {"auroc": auroc, "average_precision": average_precision, "pr_auc_trapezoid": pr_auc_trapezoid,
                "mse": mse, "r2": r2}[info.name]
    return function(y_true, prediction)
