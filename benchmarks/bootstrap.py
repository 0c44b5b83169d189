"""The paper's whole statistics workload: jaxprobe's vectorised bootstrap vs the authors' loop vs scipy.

    python benchmarks/bootstrap.py            # competitors timed on 300 resamples, extrapolated to B
    python benchmarks/bootstrap.py --quick    # 60 resamples for the competitors

Workload (B = 10,000 resamples, 3 encoders, every metric with CIs and all 3 paired tests):
  - classification, n = 952: AUROC and AUPRC;
  - segmentation, n = 476, two heads (linear probe, custom model): per-image Dice and IoU;
  - regression, n = 6,000: R² and MSE.

Competitors, timed in the same process on the same synthetic data:
  - "authors' loop": the authors' evaluation code's approach — a Python loop of index resamples shared by the
    encoders, scikit-learn metrics on each (roc_auc_score, average_precision_score, r2_score,
    mean_squared_error; Dice/IoU as the mean of precomputed per-image values) — timed on a few hundred
    resamples and extrapolated linearly to B;
  - scipy.stats.bootstrap (percentile, paired=True, one call per task/head/metric with a vector statistic of
    the three encoders' values and the three differences): scikit-learn statistics for AUROC/AUPRC (not
    vectorised), vectorised numpy statistics for Dice, IoU, R², MSE (run at full B); the non-vectorised
    ones timed on a few hundred resamples and extrapolated.
jaxprobe is timed cold (first call in the process, including JIT compilation) and warm (second call).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from jaxprobe import metrics as M  # noqa: E402
from jaxprobe.stats import compare_metrics  # noqa: E402

ENCODERS = ("rad_dino", "chexagent", "biomedclip")


def make_workload(seed: int = 0):
    """Synthetic predictions with the paper's sizes; scores rounded so ties occur."""
    rng = np.random.default_rng(seed)
    y = (rng.random(952) < 0.5).astype(int)
    classification = {"y": y, "preds": {e: np.round(rng.normal(y * d, 1), 2) for e, d in zip(ENCODERS, (1.6, 1.3, 1.25))}}
    true_area = rng.integers(50, 4000, 476)
    segmentation = []
    for quality in ((0.45, 0.40, 0.39), (0.60, 0.52, 0.50)):
        stats = {}
        for e, q in zip(ENCODERS, quality):
            inter = (true_area * rng.uniform(q - 0.3, q + 0.3, 476).clip(0, 1)).astype(int)
            stats[e] = M.MaskStatistics(inter, inter + rng.integers(0, 1500, 476), true_area)
        segmentation.append(stats)
    ctr = rng.normal(0.5, 0.05, 6000)
    regression = {"y": ctr, "preds": {e: ctr + rng.normal(0, s, 6000) for e, s in zip(ENCODERS, (0.02, 0.025, 0.026))}}
    return classification, segmentation, regression


def run_jaxprobe(workload, B: int):
    classification, segmentation, regression = workload
    out = [compare_metrics(["auroc", "auprc"], classification["y"], classification["preds"], n_resamples=B)]
    out += [compare_metrics(["dice", "iou"], None, stats, n_resamples=B) for stats in segmentation]
    out.append(compare_metrics(["r2", "mse"], regression["y"], regression["preds"], n_resamples=B))
    return out


def authors_loop(workload, n_resamples: int, seed: int = 5656):
    """A Python loop of shared index resamples with scikit-learn metrics per encoder (the authors' approach)."""
    classification, segmentation, regression = workload
    rng = np.random.RandomState(seed)
    per_image = [{e: (M.dice_from_statistics(s[e]), M.iou_from_statistics(s[e])) for e in ENCODERS} for s in segmentation]
    values = []
    for _ in range(n_resamples):
        row = []
        y, preds = classification["y"], classification["preds"]
        idx = rng.choice(y.size, y.size)
        if np.unique(y[idx]).size < 2:       # the authors skip one-class resamples
            continue
        for e in ENCODERS:
            row += [skm.roc_auc_score(y[idx], preds[e][idx]), skm.average_precision_score(y[idx], preds[e][idx])]
        for head in per_image:
            idx = rng.choice(476, 476)
            for e in ENCODERS:
                row += [np.mean(head[e][0][idx]), np.mean(head[e][1][idx])]
        y, preds = regression["y"], regression["preds"]
        idx = rng.choice(y.size, y.size)
        for e in ENCODERS:
            row += [skm.r2_score(y[idx], preds[e][idx]), skm.mean_squared_error(y[idx], preds[e][idx])]
        values.append(row)
    values = np.array(values)
    # CIs and paired differences, as the authors' code derives them from the stored values.
    np.percentile(values, [2.5, 97.5], axis=0)
    return values


def _with_differences(per_encoder):
    pairs = [per_encoder[i] - per_encoder[j] for i, j in itertools.combinations(range(len(per_encoder)), 2)]
    return np.stack(list(per_encoder) + pairs)


def scipy_bootstrap(workload, n_resamples_vectorised: int, n_resamples_loop: int):
    """Return (seconds for the vectorised calls at full B, seconds for the loop calls at n_resamples_loop)."""
    classification, segmentation, regression = workload
    common = dict(paired=True, method="percentile", rng=0)

    t0 = time.perf_counter()
    for stats in segmentation:
        for fn in (M.dice_from_statistics, M.iou_from_statistics):
            data = tuple(fn(stats[e]) for e in ENCODERS)
            sps.bootstrap(data, lambda *a, axis=-1: _with_differences([x.mean(axis) for x in a]),
                          vectorized=True, n_resamples=n_resamples_vectorised, batch=1000, **common)
    y = regression["y"]
    data = (y,) + tuple(regression["preds"][e] for e in ENCODERS)

    def r2_vectorised(t, *preds, axis=-1):
        total = ((t - t.mean(axis, keepdims=True)) ** 2).sum(axis)
        return _with_differences([1 - ((t - p) ** 2).sum(axis) / total for p in preds])

    sps.bootstrap(data, r2_vectorised, vectorized=True, n_resamples=n_resamples_vectorised, batch=250, **common)
    sps.bootstrap(data, lambda t, *preds, axis=-1: _with_differences([((t - p) ** 2).mean(axis) for p in preds]),
                  vectorized=True, n_resamples=n_resamples_vectorised, batch=250, **common)
    vectorised_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    data = (classification["y"],) + tuple(classification["preds"][e] for e in ENCODERS)
    for fn in (skm.roc_auc_score, skm.average_precision_score):
        sps.bootstrap(data, lambda t, *preds: _with_differences([fn(t, p) for p in preds]),
                      vectorized=False, n_resamples=n_resamples_loop, **common)
    return vectorised_seconds, time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="time the competitors on 60 resamples instead of 300")
    parser.add_argument("--resamples", type=int, default=10_000, help="B for the workload")
    args = parser.parse_args(argv)
    B = args.resamples
    sample = 60 if args.quick else 300
    workload = make_workload()
    print(f"workload: 3 encoders; AUROC+AUPRC n=952; Dice+IoU n=476 x 2 heads; R2+MSE n=6000; B={B}; "
          f"3 paired tests per metric; {os.cpu_count()} CPUs")

    t0 = time.perf_counter()
    run_jaxprobe(workload, B)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = run_jaxprobe(workload, B)
    warm = time.perf_counter() - t0

    t0 = time.perf_counter()
    loop_values = authors_loop(workload, sample)
    loop = (time.perf_counter() - t0) * B / sample

    vec_seconds, loop_seconds = scipy_bootstrap(workload, B, sample)
    scipy_total = vec_seconds + loop_seconds * B / sample

    print(f"{'method':<58}{'seconds':>10}{'vs jaxprobe warm':>18}{'vs cold':>10}")
    rows = [
        ("jaxprobe (JAX, warm: second call in the process)", warm),
        ("jaxprobe (JAX, cold: first call, incl. JIT compile)", cold),
        (f"authors' loop, scikit-learn (extrapolated from {sample})", loop),
        (f"scipy.stats.bootstrap (sklearn stats extrapolated from {sample})", scipy_total),
    ]
    for name, seconds in rows:
        print(f"{name:<58}{seconds:>10.2f}{seconds / warm:>17.1f}x{seconds / cold:>9.1f}x")
    auroc = results[0]["auroc"].models["rad_dino"]
    low, high = np.percentile(loop_values[:, 0], [2.5, 97.5])
    print(f"check: RAD-DINO AUROC {auroc.estimate:.4f}, 95% CI [{auroc.ci_low:.4f}, {auroc.ci_high:.4f}] "
          f"(authors' loop, {len(loop_values)} resamples: [{low:.4f}, {high:.4f}]); "
          f"p(RAD-DINO vs CheXagent) = {results[0]['auroc'].pair('rad_dino', 'chexagent').p_value:.2g}")


if __name__ == "__main__":
    main()
