"""Curves of one run, read from its folder: learning curves (``train/<encoder>/history.csv``) and, for
classification, ROC and precision-recall curves with each encoder's operating point marked, and a reliability
diagram with the Brier score. PNG and PDF (``jaxprobe.figures.save``).

``for_run(run_dir, analysis, figures_dir, stem)`` draws what the run's files allow and returns the PNG paths
(nothing for a folder of results.json alone, as ``python -m jaxprobe.stats`` writes).
"""
from __future__ import annotations

import csv
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxprobe import predictions  # noqa: E402
from jaxprobe import tables as T  # noqa: E402
from jaxprobe.figures import _colour, save  # noqa: E402
from jaxprobe.metrics import threshold_counts  # noqa: E402


def roc_points(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1)."""
    y = np.asarray(y_true).astype(bool)
    _, tp, fp = threshold_counts(y, score)
    return np.concatenate([[0.0], fp / (~y).sum()]), np.concatenate([[0.0], tp / y.sum()])


def pr_points(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct threshold, highest threshold first."""
    y = np.asarray(y_true).astype(bool)
    _, tp, fp = threshold_counts(y, score)
    return tp / y.sum(), tp / (tp + fp)


def reliability_bins(y_true, score, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width probability bin with cases: mean predicted probability, observed fraction, count."""
    y, s = np.asarray(y_true, np.float64), np.asarray(score, np.float64)
    which = np.clip((s * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    kept = counts > 0
    mean_score = np.bincount(which, weights=s, minlength=bins)[kept] / counts[kept]
    observed = np.bincount(which, weights=y, minlength=bins)[kept] / counts[kept]
    return mean_score, observed, counts[kept]


def _title(analysis: dict) -> str:
    return f"{analysis['task']} — {analysis['scenario']}"


def figure_roc_pr(analysis: dict, y_true, scores: dict, path: pathlib.Path) -> pathlib.Path:
    models, op = list(scores), (analysis.get("operating_points") or {}).get("models", {})
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(9.5, 4.3))
    prevalence = float(np.mean(y_true))
    for m in models:
        colour, name = _colour(models, m), T.display_name(m, [analysis])
        fpr, tpr = roc_points(y_true, scores[m])
        auroc = analysis["metrics"].get("auroc", {}).get("models", {}).get(m, {}).get("estimate")
        roc.plot(fpr, tpr, color=colour, label=name + (f" (AUROC {auroc:.3f})" if auroc is not None else ""))
        recall, precision = pr_points(y_true, scores[m])
        pr.plot(np.concatenate([[0.0], recall]), np.concatenate([[precision[0]], precision]), color=colour,
                drawstyle="steps-post", label=name)
        point = {k: v["estimate"] for k, v in op.get(m, {}).items() if k != "threshold"}
        if point.get("sensitivity") is not None and point.get("specificity") is not None:
            roc.plot(1 - point["specificity"], point["sensitivity"], "o", color=colour, markeredgecolor="black")
        if point.get("sensitivity") is not None and point.get("ppv") is not None:  # no PPV when none is called
            pr.plot(point["sensitivity"], point["ppv"], "o", color=colour, markeredgecolor="black")
    roc.plot([0, 1], [0, 1], ":", color="grey")
    pr.axhline(prevalence, ls=":", color="grey", label=f"prevalence {prevalence:.2f}")
    roc.set(xlabel="1 − specificity", ylabel="sensitivity", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
    pr.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision–recall", xlim=(0, 1),
           ylim=(0, 1.02))
    roc.legend(fontsize=8, loc="lower right")
    pr.legend(fontsize=8, loc="lower left")
    if op:
        fig.text(0.5, 0.005, "dots: each model's operating point, threshold chosen on the validation set",
                 ha="center", fontsize=8)
    fig.suptitle(_title(analysis))
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save(fig, path)


def figure_reliability(analysis: dict, y_true, scores: dict, path: pathlib.Path, bins: int = 10) -> pathlib.Path:
    models, op = list(scores), (analysis.get("operating_points") or {}).get("models", {})
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for m in models:
        mean_score, observed, _ = reliability_bins(y_true, scores[m], bins)
        brier = op.get(m, {}).get("brier", {}).get("estimate")
        label = T.display_name(m, [analysis]) + (f" (Brier {brier:.3f})" if brier is not None else "")
        ax.plot(mean_score, observed, "o-", color=_colour(models, m), label=label)
    ax.set(xlabel="mean predicted probability", ylabel="observed fraction positive", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability ({bins} bins)\n{_title(analysis)}")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return save(fig, path)


def read_history(path: pathlib.Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def figure_learning(analysis: dict, histories: dict[str, list[dict]], path: pathlib.Path) -> pathlib.Path:
    """Training (dashed) and validation (solid) loss per epoch of each model's members; dots: kept weights."""
    models = list(histories)
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for m in models:
        colour, rows = _colour(models, m), histories[m]
        for k in sorted({int(r["member"]) for r in rows}):
            mine = [r for r in rows if int(r["member"]) == k and r["active"] == "1"]
            epochs = [int(r["epoch"]) for r in mine]
            label = T.display_name(m, [analysis]) if k == 0 else None
            ax.plot(epochs, [float(r["val_loss"]) for r in mine], "-", color=colour, lw=1.2, label=label)
            ax.plot(epochs, [float(r["train_loss"]) for r in mine], "--", color=colour, lw=0.8)
            best = [r for r in mine if r["best"] == "1"]
            if best:
                ax.plot(int(best[-1]["epoch"]), float(best[-1]["val_loss"]), "o", color=colour,
                        markeredgecolor="black")
    ax.set(xlabel="epoch", ylabel="loss", title=f"Learning curves\n{_title(analysis)}")
    ax.legend(fontsize=8, title="solid: validation, dashed: training", title_fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def for_run(run_dir, analysis: dict, figures_dir, stem: str) -> list[pathlib.Path]:
    run_dir, figures_dir = pathlib.Path(run_dir), pathlib.Path(figures_dir)
    out = []
    histories = {m: read_history(p) for m in analysis["models"]
                 if (p := run_dir / "train" / m / "history.csv").is_file()}
    if histories:
        out.append(figure_learning(analysis, histories, figures_dir / f"{stem}_learning.png"))
    if analysis["kind"] == "classification" and all(
            predictions.scores_file(run_dir, m, "ranking").is_file() for m in analysis["models"]):
        loaded = predictions.load_run(run_dir, analysis["models"], "ranking")
        out.append(figure_roc_pr(analysis, loaded.y_true, loaded.predictions, figures_dir / f"{stem}_roc_pr.png"))
        out.append(figure_reliability(analysis, loaded.y_true, loaded.predictions,
                                      figures_dir / f"{stem}_reliability.png"))
    return out
