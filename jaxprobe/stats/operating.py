"""Classification at an operating point: a threshold chosen on the validation set, and the test set's
sensitivity, specificity, PPV, NPV, F1, balanced accuracy and Brier score with bootstrap CIs and tests.

The threshold is chosen on each model's validation scores (``choose_threshold``): Youden's J (the threshold
maximising sensitivity + specificity − 1; the highest such threshold on ties) or the highest threshold whose
validation sensitivity reaches a target. A case is positive when its score is at or above the threshold, as
scikit-learn's ``roc_curve`` counts. On the test set every statistic is a ratio of sums of per-case values, so
all B resamples come from one matrix product with the resample-count matrix W — the same W (same seed, the
same class strata) that ``compare`` draws for AUROC/AUPRC, so the intervals and paired tests come from the same
resamples; with ``test="unpaired"`` each model uses its own recorded seed, as there.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from jaxprobe import bootstrap as boot
from jaxprobe.metrics import threshold_counts

from .compare import bonferroni, paired_p_value, percentile_interval

STATISTICS = ("sensitivity", "specificity", "ppv", "npv", "f1", "balanced_accuracy", "brier")
RULES = ("youden", "sensitivity")


def choose_threshold(y_val, score_val, rule: str = "youden", sensitivity: float = 0.9) -> float:
    """The threshold chosen on validation labels and scores (see the module docstring)."""
    y = np.asarray(y_val).astype(bool)
    if rule not in RULES:
        raise ValueError(f"operating point rule must be one of {RULES}, got {rule!r}")
    if y.all() or not y.any():
        raise ValueError(f"the validation set has one class only ({int(y.sum())} positives of {len(y)}); no "
                         "threshold can be chosen on it")
    candidates, tp, fp = threshold_counts(y, score_val)  # descending: the first best is the highest threshold
    tpr, fpr = tp / y.sum(), fp / (~y).sum()
    if rule == "youden":
        return float(candidates[int(np.argmax(tpr - fpr))])
    if not 0 < sensitivity <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {sensitivity}")
    return float(candidates[int(np.argmax(tpr >= sensitivity))])  # tpr reaches 1 at the lowest threshold


def _ratios(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics from the sums [..., 5] of (tp, fp, tn, fn, squared error) over the (resampled) cases."""
    tp, fp, tn, fn, sq = (sums[..., i] for i in range(5))
    with np.errstate(invalid="ignore", divide="ignore"):
        sens, spec = tp / (tp + fn), tn / (tn + fp)
        return {"sensitivity": sens, "specificity": spec, "ppv": tp / (tp + fp), "npv": tn / (tn + fn),
                "f1": 2 * tp / (2 * tp + fp + fn), "balanced_accuracy": (sens + spec) / 2,
                "brier": sq / (tp + fp + tn + fn)}


def per_case(y_true, score, threshold: float) -> np.ndarray:
    """[n, 5]: each case's contribution to tp, fp, tn, fn and the squared error (score − y)²."""
    y, s = np.asarray(y_true).astype(bool), np.asarray(score, np.float64)
    called = s >= threshold
    return np.stack([called & y, called & ~y, ~called & ~y, ~called & y, (s - y) ** 2], axis=1).astype(np.float64)


def operating_points(y_true, scores: Mapping[str, np.ndarray], thresholds: Mapping[str, float], *,
                     n_resamples: int = 10_000, seed: int = 0, ci_level: float = 0.95, stratified: bool = True,
                     test: str = "paired", alpha: float = 0.05, rule: str = "youden",
                     target_sensitivity: float | None = None) -> dict:
    """results.json's ``operating_points`` for the test labels ``y_true`` and each model's test ``scores``."""
    y = np.asarray(y_true).astype(np.int64)
    models = list(scores)
    n = len(y)
    seeds = {m: seed + (i if test == "unpaired" else 0) for i, m in enumerate(models)}
    counts = {}
    for m in models:
        if seeds[m] not in counts:
            plan = boot.ResamplePlan(n, n_resamples, seeds[m], strata=y if stratified else None)
            counts[seeds[m]] = boot.resample_counts(plan).astype(np.float64)
    cases = {m: per_case(y, scores[m], thresholds[m]) for m in models}
    full = {m: _ratios(cases[m].sum(0)) for m in models}
    replicates = {m: _ratios(counts[seeds[m]] @ cases[m]) for m in models}  # each [B]

    out_models = {}
    for m in models:
        entry = {"threshold": float(thresholds[m])}
        for stat in STATISTICS:
            low, high = percentile_interval(replicates[m][stat], ci_level)
            entry[stat] = {"estimate": float(full[m][stat]), "ci_low": low, "ci_high": high}
        out_models[m] = entry
    pairs = list(itertools.combinations(models, 2))
    family = max(len(pairs), 1)
    out_pairs = []
    for a, b in pairs:
        row = {"model_a": a, "model_b": b}
        for stat in STATISTICS:
            d = replicates[a][stat] - replicates[b][stat]
            observed = float(full[a][stat] - full[b][stat])
            p = paired_p_value(d, observed)
            low, high = percentile_interval(d, ci_level)
            row[stat] = {"difference": observed, "ci_low": low, "ci_high": high, "p_value": p,
                         "p_adjusted": bonferroni(p, family), "significant": bool(p < alpha / family)}
        out_pairs.append(row)
    return {"rule": rule, "target_sensitivity": target_sensitivity if rule == "sensitivity" else None,
            "chosen_on": "validation set", "positive_when": "score >= threshold", "n_cases": n,
            "statistics": list(STATISTICS), "test": test, "resample_seeds": seeds, "stratified": stratified,
            "models": out_models, "pairs": out_pairs}
