"""Bootstrap confidence intervals and paired (or unpaired) tests between models scored on one test set.

How the numbers are made (every choice is an argument and is written into results.json):

- One count matrix W [B, n] per task, drawn from ``jax.random.key(seed)`` (see `jaxprobe.bootstrap`),
  shared by every model, so each comparison is paired. AUROC/AUPRC resample within each class by default
  (every resample keeps the test set's prevalence); unstratified resamples holding one class are redrawn
  or dropped (``degenerate``).
- The point estimate is the metric on the full test set; ``point_estimate="bootstrap_mean"`` reports the
  mean of the bootstrap values instead (the authors' convention). CIs are percentile intervals.
- Paired two-sided p-value for models A, B: Δ* = M_A − M_B on each resample, Δ̂ the full-test-set
  difference, p = (1 + #{|Δ* − Δ̂| ≥ |Δ̂|}) / (B_valid + 1) — the bootstrap distribution re-centred on the
  null, with +1 so no p is 0. Bonferroni over the m model pairs of one metric: p_adj = min(1, m·p),
  significant when p < alpha / m (0.05 / 3 = 0.0167 for three encoders).
- For AUROC, DeLong's test and interval are computed as a cross-check.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from typing import Mapping, Sequence

import numpy as np

from jaxprobe import bootstrap as boot
from jaxprobe import metrics as M
from jaxprobe.delong import delong

log = logging.getLogger("jaxprobe.stats")

POINT_ESTIMATES = ("full_sample", "bootstrap_mean")
# "paired": one count matrix for every model (the better test when all are scored on one test set);
# "unpaired": an independent resample set per model, what the paper's "two-sample bootstrapping test" did
# (its Table S1 p-values follow from its Table 2 CIs as z = d / sqrt(SE_A^2 + SE_B^2)).
TESTS = ("paired", "unpaired")


@dataclasses.dataclass
class ModelResult:
    estimate: float
    ci_low: float
    ci_high: float
    full_sample: float          # the metric on the full test set
    bootstrap_mean: float
    bootstrap_sd: float
    n_valid: int                # resamples where the metric is defined


@dataclasses.dataclass
class PairResult:
    model_a: str
    model_b: str
    difference: float           # estimate(A) − estimate(B)
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    significant: bool
    n_valid: int


@dataclasses.dataclass
class Comparison:
    metric: M.MetricInfo
    models: dict[str, ModelResult]
    pairs: list[PairResult]
    settings: dict
    n_cases: int
    replicates: np.ndarray      # [models, B] bootstrap values, NaN where undefined/dropped
    delong: dict | None = None
    warnings: tuple[str, ...] = ()  # e.g. too few cases for percentile intervals to be trusted

    def pair(self, a: str, b: str) -> PairResult:
        for p in self.pairs:
            if (p.model_a, p.model_b) == (a, b):
                return p
        raise KeyError(f"no pair ({a!r}, {b!r}) in {[(p.model_a, p.model_b) for p in self.pairs]}")

    def to_dict(self) -> dict:
        out = {
            "name": self.metric.name,
            "display": self.metric.display,
            "definition": self.metric.definition,
            "higher_is_better": self.metric.higher_is_better,
            "models": {m: dataclasses.asdict(r) for m, r in self.models.items()},
            "pairs": [dataclasses.asdict(p) for p in self.pairs],
        }
        if self.delong is not None:
            out["delong"] = self.delong
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


SMALL_CLASS = 10  # fewer cases of a class than this (ranking metrics) ...
SMALL_SAMPLE = 20  # ... or fewer test cases than this (the others): percentile intervals are not to be trusted


def bonferroni(p: float, family: int) -> float:
    """min(1, family x p); an undefined p stays undefined (NaN), it is not 'not significant at 1.0'."""
    return float("nan") if math.isnan(p) else min(1.0, family * p)


def sample_warnings(kind: str, y, n: int) -> tuple[str, ...]:
    """Warnings about a test set too small for bootstrap percentile intervals (they collapse, e.g. 1.000
    (1.000-1.000) for AUROC from three cases)."""
    if kind == "ranking":
        counts = {"positive": int(np.sum(np.asarray(y) == 1)), "negative": int(np.sum(np.asarray(y) == 0))}
        small = {k: v for k, v in counts.items() if v < SMALL_CLASS}
        if small:
            return (f"small test set: {', '.join(f'{v} {k}' for k, v in small.items())} case(s) (fewer than "
                    f"{SMALL_CLASS}); the bootstrap intervals and p-values are unreliable",)
        return ()
    if n < SMALL_SAMPLE:
        return (f"small test set: {n} cases (fewer than {SMALL_SAMPLE}); the bootstrap intervals and p-values are "
                "unreliable",)
    return ()


def paired_p_value(differences: np.ndarray, observed: float) -> float:
    """Two-sided p of the re-centred paired bootstrap: (1 + #{|Δ* − Δ̂| ≥ |Δ̂|}) / (B + 1)."""
    d = differences[~np.isnan(differences)]
    if not np.isfinite(observed) or d.size == 0:
        return float("nan")      # the metric is undefined on the full test set or on every resample
    extreme = np.count_nonzero(np.abs(d - observed) >= abs(observed))
    return float((1 + extreme) / (d.size + 1))


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def _check_settings(ci_level, point_estimate, alpha, n_resamples):
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must be in (0, 1), got {ci_level}")
    if point_estimate not in POINT_ESTIMATES:
        raise ValueError(f"point_estimate must be one of {POINT_ESTIMATES}, got {point_estimate!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")


def _prepare_inputs(kind: str, y_true, predictions: Mapping[str, object], mask_threshold: float,
                    shared_truth: bool = True):
    """Validate inputs; return (y_true, {model: prediction}, n). Masks become per-case statistics.

    ``shared_truth=False`` accepts different true-mask areas per model: each encoder scored against the
    ground truth resampled to its own input geometry (per-case metrics are still paired by case)."""
    if not predictions:
        raise ValueError("predictions is empty: pass {model_name: scores}")
    if kind == "ranking":
        y = M.check_binary_labels(y_true)
        preds = {}
        for name, s in predictions.items():
            s = np.asarray(s, np.float64)
            if s.shape != y.shape:
                raise ValueError(f"model {name!r}: scores have shape {s.shape}, y_true has {y.shape}")
            if not np.all(np.isfinite(s)):
                raise ValueError(f"model {name!r}: scores hold non-finite values")
            preds[name] = s
        return y, preds, y.size
    if kind == "regression":
        y = np.asarray(y_true, np.float64)
        preds = {}
        for name, p in predictions.items():
            M._regression_inputs(y, p)
            preds[name] = np.asarray(p, np.float64)
        if np.all(y == y[0]):
            raise ValueError("y_true is constant: R² is undefined")
        return y, preds, y.size
    # Segmentation: MaskStatistics, [n, 3] arrays, or full masks with y_true the true masks.
    preds = {}
    for name, p in predictions.items():
        if isinstance(p, M.MaskStatistics):
            preds[name] = p
        elif y_true is not None and np.ndim(y_true) >= 2 and np.shape(p) == np.shape(y_true):
            preds[name] = M.mask_statistics(p, y_true, mask_threshold)
        else:
            preds[name] = M.MaskStatistics.from_array(p)
    first_name, first = next(iter(preds.items()))
    for name, stats in preds.items():
        if len(stats) != len(first) or (shared_truth and not np.array_equal(stats.true_area, first.true_area)):
            bad = (np.flatnonzero(np.asarray(stats.true_area) != np.asarray(first.true_area))
                   if len(stats) == len(first) else [])
            where = f" (first at case index {int(bad[0])})" if len(bad) else f" ({len(stats)} vs {len(first)} cases)"
            raise ValueError(f"models {first_name!r} and {name!r} disagree on the true masks{where}: "
                             "every model must be scored on the same cases in the same order")
    if y_true is not None and np.ndim(y_true) == 1 and not np.array_equal(np.asarray(y_true), first.true_area):
        raise ValueError("y_true (true mask areas) does not match the true_area of the mask statistics")
    return None, preds, len(first)


def compare_metrics(
    metrics: Sequence[str],
    y_true,
    predictions: Mapping[str, object],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    ci_level: float = 0.95,
    stratify: bool | None = None,
    degenerate: str = "redraw",
    empty_mask_rule: str = "zero",
    mask_threshold: float = 0.5,
    pr_auc: str = "average_precision",
    point_estimate: str = "full_sample",
    alpha: float = 0.05,
    n_comparisons: int | None = None,
    with_delong: bool = True,
    max_chunk_elements: int = boot.DEFAULT_MAX_CHUNK_ELEMENTS,
    shared_truth: bool = True,
    test: str = "paired",
) -> dict[str, Comparison]:
    """Several metrics of one kind from one shared set of resamples (one sort per model for AUROC + AUPRC).

    ``n_comparisons`` is the Bonferroni family size, by default the number of model pairs. ``shared_truth``
    (segmentation): require the same true-mask areas for every model; False when each model is scored at its own
    input geometry.
    """
    _check_settings(ci_level, point_estimate, alpha, n_resamples)
    infos = [M.resolve_metric(m, pr_auc) for m in metrics]
    if not infos:
        raise ValueError("no metric requested")
    kinds = {i.kind for i in infos}
    if len(kinds) != 1:
        raise ValueError(f"metrics {[i.name for i in infos]} mix kinds {sorted(kinds)}; compare them in separate calls")
    kind = kinds.pop()
    if kind != "ranking" and stratify:
        raise ValueError(f"stratify applies to AUROC/AUPRC (class labels); {kind} metrics have no classes")
    stratified = kind == "ranking" and (True if stratify is None else stratify)
    y, preds, n = _prepare_inputs(kind, y_true, predictions, mask_threshold, shared_truth)
    models = list(preds)
    pairs = list(itertools.combinations(models, 2))
    family = len(pairs) if n_comparisons is None else n_comparisons
    if pairs and family < 1:
        raise ValueError(f"n_comparisons must be at least 1, got {n_comparisons}")
    threshold = alpha / max(family, 1)

    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    # unpaired: model k resamples with seed + k, so model 0's intervals are those of the paired test
    seeds = {m: seed + (i if test == "unpaired" else 0) for i, m in enumerate(models)}
    groups = [models] if test == "paired" else [[m] for m in models]
    parts = [boot.bootstrap_replicates(
        infos, y, {m: preds[m] for m in group}, boot.ResamplePlan(n, n_resamples, seeds[group[0]],
                                                                 strata=y if stratified else None),
        degenerate=degenerate, empty_mask_rule=empty_mask_rule, max_chunk_elements=max_chunk_elements)
        for group in groups]
    replicate_values = {i.name: np.concatenate([part.values[i.name] for part in parts]) for i in infos}
    n_redrawn = sum(part.n_redrawn for part in parts)
    settings = {
        "n_resamples": n_resamples,
        "seed": seed,
        "rng": "row b: SplitMix64 stream seeded by the 64 bits of fold_in(jax.random.key(seed), b) "
               "(threefry2x32); case index = stratum case [high 32 bits of output x stratum size >> 32]",
        "ci_level": ci_level,
        "ci_method": "percentile",
        "stratified": stratified,
        "degenerate_resamples": (degenerate if kind == "ranking" and not stratified else None),
        "n_redrawn_resamples": n_redrawn if kind == "ranking" and not stratified else None,
        "empty_mask_rule": empty_mask_rule if kind == "mask" else None,
        "mask_threshold": mask_threshold if kind == "mask" else None,
        "true_masks": ("shared" if shared_truth else "per_model_geometry") if kind == "mask" else None,
        # What "AUPRC" means here: average_precision (step sum) or pr_auc_trapezoid (authors' code).
        "pr_auc_definition": ([i.name for i in infos if i.name in ("average_precision", "pr_auc_trapezoid")]
                              or None),
        "point_estimate": point_estimate,
        "test": test,
        "resample_seeds": seeds if test == "unpaired" else None,
        "p_value": (f"two-sided {test} bootstrap, re-centred: (1 + #{{|d* - d| >= |d|}}) / (B_valid + 1), "
                    "d* = resample difference" + (" (independent resamples per model)" if test == "unpaired" else "")
                    + ", d = full-test-set difference"),
        "alpha": alpha,
        "n_comparisons": family if pairs else 0,
        "bonferroni_threshold": threshold if pairs else None,
    }

    warning_list = sample_warnings(kind, y, n)
    for text in warning_list:
        log.warning(text)
    results = {}
    for info in infos:
        values = replicate_values[info.name]
        full = {m: M.point_estimate(info.name, y, preds[m], empty_mask_rule=empty_mask_rule) for m in models}
        model_results = {}
        for i, m in enumerate(models):
            v = values[i]
            valid = v[~np.isnan(v)]
            mean = float(valid.mean()) if valid.size else float("nan")
            low, high = percentile_interval(v, ci_level)
            model_results[m] = ModelResult(
                estimate=full[m] if point_estimate == "full_sample" else mean, ci_low=low, ci_high=high,
                full_sample=full[m], bootstrap_mean=mean,
                bootstrap_sd=float(valid.std(ddof=1)) if valid.size > 1 else float("nan"), n_valid=int(valid.size))
        pair_results = []
        for a, b in pairs:
            d = values[models.index(a)] - values[models.index(b)]
            observed = full[a] - full[b]
            p = paired_p_value(d, observed)
            low, high = percentile_interval(d, ci_level)
            pair_results.append(PairResult(
                model_a=a, model_b=b,
                difference=model_results[a].estimate - model_results[b].estimate,
                ci_low=low, ci_high=high, p_value=p, p_adjusted=bonferroni(p, family),
                significant=bool(p < threshold), n_valid=int(np.count_nonzero(~np.isnan(d)))))
        delong_out = None
        if info.name == "auroc" and with_delong:
            dl = delong(y, preds, ci_level)
            delong_out = {
                "models": {m: {"auroc": float(dl.auroc[i]), "ci_low": dl.ci(m)[0], "ci_high": dl.ci(m)[1],
                               "se": float(np.sqrt(dl.covariance[i, i]))} for i, m in enumerate(models)},
                "pairs": [{"model_a": a, "model_b": b, **r, "p_adjusted": bonferroni(r["p_value"], family),
                           "significant": bool(r["p_value"] < threshold)} for (a, b), r in dl.pairs().items()],
            }
        results[info.name] = Comparison(info, model_results, pair_results, settings, n, values, delong_out,
                                        warning_list)
    return results


def compare(metric: str, y_true, predictions: Mapping[str, object], n_resamples: int = 10_000, seed: int = 0,
            **options) -> Comparison:
    """Bootstrap CIs per model and paired tests per model pair for one metric (options: see compare_metrics).

    ``y_true``: 0/1 labels (AUROC, AUPRC), targets (R², MSE), or for Dice/IoU the true masks [n, H, W]
    (predictions then masks or probabilities) or None (predictions then MaskStatistics or [n, 3] arrays).
    """
    results = compare_metrics([metric], y_true, predictions, n_resamples=n_resamples, seed=seed, **options)
    return next(iter(results.values()))
