"""The paper-style figures of analyses (read from their results.json dicts), written as PNG.

- one per task and head: a panel per metric, a bar per model with its CI as error bars, and an "ns" bracket over
  every pair whose (paired or unpaired) test is not significant after Bonferroni (pairs without a bracket differ
  significantly);
- with more than three models, a matrix of pairwise differences per metric, significant cells starred;
- one per task with two or more heads: per metric, each model's heads side by side (with CIs) and the relative
  improvement of the other head over the baseline head ("linear probe" when present).
"""
from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxprobe import tables as T  # noqa: E402

MODEL_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
HEAD_HATCHES = ("", "//", "..", "xx")
BASELINE_SCENARIO = "linear probe"


def save(fig, path: pathlib.Path) -> pathlib.Path:
    """The figure as PNG at ``path`` and as vector PDF beside it (same name, .pdf); returns the PNG's path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return path


def _colour(models: list[str], model: str) -> str:
    return MODEL_COLOURS[models.index(model) % len(MODEL_COLOURS)]


def _error_bars(rows):
    est = [r["estimate"] for r in rows]
    low = [max(0.0, r["estimate"] - r["ci_low"]) for r in rows]
    high = [max(0.0, r["ci_high"] - r["estimate"]) for r in rows]
    return est, [low, high]


def figure_task_scenario(analysis: dict, all_models: list[str], path: pathlib.Path) -> pathlib.Path:
    """Bars with CI error bars per metric; "ns" brackets for pairs that are not significantly different."""
    metrics = list(analysis["metrics"].values())
    models = analysis["models"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.2 + 2.6 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = [metric["models"][m] for m in models]
        est, err = _error_bars(rows)
        x = list(range(len(models)))
        ax.bar(x, est, yerr=err, capsize=4, color=[_colour(all_models, m) for m in models], edgecolor="black",
               linewidth=0.6, error_kw={"elinewidth": 1})
        ax.set_xticks(x, [T.display_name(m, [analysis]) for m in models], rotation=20, ha="right")
        ax.set_title(metric["display"])
        top = max(r["ci_high"] for r in rows)
        bottom = min(0.0, min(r["ci_low"] for r in rows))
        span = (top - bottom) or 1.0
        level = top + 0.05 * span
        for pair in metric["pairs"]:
            if pair["significant"]:
                continue
            i, j = models.index(pair["model_a"]), models.index(pair["model_b"])
            ax.plot([i, i, j, j], [level, level + 0.02 * span, level + 0.02 * span, level], color="black", lw=0.8)
            ax.text((i + j) / 2, level + 0.03 * span, "ns", ha="center", va="bottom", fontsize=9)
            level += 0.1 * span
        ax.set_ylim(bottom, max(level + 0.02 * span, top + 0.05 * span))
        ax.spines[["top", "right"]].set_visible(False)
    threshold = analysis["settings"].get("bonferroni_threshold")
    test = analysis["settings"].get("test", "paired")
    note = f"ns: {test} bootstrap p ≥ {threshold:.4g} (Bonferroni)" if threshold else ""
    fig.suptitle(f"{analysis['task']} — {analysis['scenario']}", fontsize=11)
    fig.text(0.99, 0.01, f"{100 * analysis['settings']['ci_level']:g}% CI. {note}", ha="right", va="bottom",
             fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save(fig, path)


def relative_improvement(baseline: float, other: float, higher_is_better: bool) -> float:
    """Relative change of ``other`` over ``baseline`` in the metric's good direction (0.1 = 10 % better)."""
    change = (other - baseline) if higher_is_better else (baseline - other)
    return change / abs(baseline) if baseline else float("nan")


def figure_heads(task: str, analyses: list[dict], all_models: list[str], path: pathlib.Path) -> pathlib.Path:
    """Each model's heads side by side per metric, annotated with the relative improvement over the baseline head."""
    scenarios = [a["scenario"] for a in analyses]
    base = scenarios.index(BASELINE_SCENARIO) if BASELINE_SCENARIO in scenarios else 0
    analyses = [analyses[base]] + [a for i, a in enumerate(analyses) if i != base]
    metric_names = [m for m in analyses[0]["metrics"] if all(m in a["metrics"] for a in analyses)]
    models = [m for m in all_models if all(m in a["models"] for a in analyses)]
    fig, axes = plt.subplots(1, len(metric_names), figsize=(1.5 + 3.2 * len(metric_names), 3.8), squeeze=False)
    width = 0.8 / len(analyses)
    for ax, name in zip(axes[0], metric_names):
        tops = []
        for k, a in enumerate(analyses):
            rows = [a["metrics"][name]["models"][m] for m in models]
            est, err = _error_bars(rows)
            x = [i + (k - (len(analyses) - 1) / 2) * width for i in range(len(models))]
            ax.bar(x, est, width=width, yerr=err, capsize=3, color=[_colour(all_models, m) for m in models],
                   hatch=HEAD_HATCHES[k % len(HEAD_HATCHES)], edgecolor="black", linewidth=0.6,
                   label=a["scenario"], alpha=1.0 if k == 0 else 0.75)
            tops.append([r["ci_high"] for r in rows])
        info = analyses[0]["metrics"][name]
        span = max(max(t) for t in tops) - min(0.0, min(min(t) for t in tops)) or 1.0
        for i, m in enumerate(models):
            base_value = analyses[0]["metrics"][name]["models"][m]["estimate"]
            labels = [f"{relative_improvement(base_value, a['metrics'][name]['models'][m]['estimate'], info['higher_is_better']):+.1%}"
                      for a in analyses[1:]]
            ax.text(i, max(t[i] for t in tops) + 0.03 * span, "\n".join(labels), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(models)), [T.display_name(m, analyses) for m in models], rotation=20, ha="right")
        ax.set_title(info["display"])
        ax.set_ylim(min(0.0, min(min(t) for t in tops)), max(max(t) for t in tops) + 0.2 * span)
        ax.spines[["top", "right"]].set_visible(False)
    handles = [matplotlib.patches.Patch(facecolor="white", edgecolor="black", hatch=HEAD_HATCHES[k % len(HEAD_HATCHES)],
                                        label=a["scenario"]) for k, a in enumerate(analyses)]
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.01, 0.0), ncol=len(handles), fontsize=8,
               frameon=False)
    others = ", ".join(a["scenario"] for a in analyses[1:])
    fig.suptitle(f"{task}: {others} vs {analyses[0]['scenario']}", fontsize=11)
    fig.text(0.99, 0.01, f"above bars: relative improvement over {analyses[0]['scenario']}; "
             f"error bars: {100 * analyses[0]['settings']['ci_level']:g}% CI", ha="right", va="bottom", fontsize=7,
             color="0.3")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save(fig, path)


def figure_pairwise(analysis: dict, path: pathlib.Path) -> pathlib.Path:
    """Per metric, the matrix of differences row model − column model (lower triangle), coloured by the
    difference in the metric's good direction, with the difference and a star where the pair is significant."""
    metrics = list(analysis["metrics"].values())
    models = analysis["models"]
    names = [T.display_name(m, [analysis]) for m in models]
    k = len(models)
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.0 + (0.9 * k + 1.6) * len(metrics), 0.8 * k + 1.6),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        diff = np.full((k, k), np.nan)
        star = np.zeros((k, k), bool)
        for pair in metric["pairs"]:
            i, j = models.index(pair["model_a"]), models.index(pair["model_b"])
            d = pair["difference"] if pair["difference"] is not None else np.nan
            diff[max(i, j), min(i, j)] = d if i > j else -d  # row minus column
            star[max(i, j), min(i, j)] = pair["significant"]
        good = diff if metric["higher_is_better"] else -diff
        scale = np.nanmax(np.abs(good)) if np.isfinite(good).any() and np.nanmax(np.abs(good)) > 0 else 1.0
        ax.imshow(np.ma.masked_invalid(good), cmap="RdBu", vmin=-scale, vmax=scale)
        digits = T.digits_for(list(diff[np.isfinite(diff)]))
        for r in range(k):
            for c in range(k):
                if np.isfinite(diff[r, c]):
                    ax.text(c, r, f"{diff[r, c]:.{digits}f}{'*' if star[r, c] else ''}", ha="center", va="center",
                            fontsize=7)
        ax.set_xticks(range(k), names, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        ax.set_title(f"{metric['display']}: row − column")
    threshold = analysis["settings"].get("bonferroni_threshold")
    test = analysis["settings"].get("test", "paired")
    note = f"* {test} bootstrap p < {threshold:.4g} (Bonferroni over {len(metrics[0]['pairs'])} pairs)" \
        if threshold else ""
    fig.suptitle(f"{analysis['task']} — {analysis['scenario']}: pairwise differences", fontsize=11)
    fig.text(0.99, 0.01, f"blue: row better. {note}", ha="right", va="bottom", fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, path)
