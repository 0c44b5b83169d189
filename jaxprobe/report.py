"""Put several analyses together: Table 2, Table S1 and paper-style figures, collected in one report.md.

    python -m jaxprobe.report runs/ptx_seg_linear runs/ptx_seg_custom runs/ptx_cls runs/ctr --out report/

Each RUN_DIR holds a results.json written by `jaxprobe.results.write_analysis` (or `python -m jaxprobe.stats`).
Figures:

- one per task and head: a panel per metric, a bar per model with its CI as error bars, and an "ns"
  bracket over every pair whose (paired or unpaired) test is not significant after Bonferroni (pairs without a
  bracket differ significantly);
- one per task with two or more heads: per metric, each model's heads side by side (with CIs) and the
  relative improvement of the other head over the baseline head ("linear probe" when present).
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from jaxprobe import results as R  # noqa: E402
from jaxprobe.errors import ConfigError, guarded  # noqa: E402
from jaxprobe import tables as T  # noqa: E402

MODEL_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
HEAD_HATCHES = ("", "//", "..", "xx")
BASELINE_SCENARIO = "linear probe"


def _slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", "_".join(parts).lower()).strip("_")


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
        ax.set_xticks(x, [T.display_name(m) for m in models], rotation=20, ha="right")
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
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


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
        ax.set_xticks(range(len(models)), [T.display_name(m) for m in models], rotation=20, ha="right")
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
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _settings_table(run_dirs, analyses) -> str:
    keys = ["n_cases", "n_resamples", "seed", "test", "ci_level", "stratified", "degenerate_resamples", "empty_mask_rule",
            "mask_threshold", "pr_auc_definition", "point_estimate", "bonferroni_threshold"]
    header = ["Run", "Task", "Head"] + keys
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d, a in zip(run_dirs, analyses):
        values = [a.get("n_cases")] + [a["settings"].get(k) for k in keys[1:]]
        cells = ["–" if v is None else (f"{v:.4g}" if isinstance(v, float) else
                                         ", ".join(v) if isinstance(v, list) else str(v)) for v in values]
        lines.append("| " + " | ".join([f"`{d}`", a["task"], a["scenario"]] + cells) + " |")
    return "\n".join(lines)


def build_report(run_dirs: Sequence[str], out_dir) -> pathlib.Path:
    out_dir = pathlib.Path(out_dir)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    analyses = [R.load_analysis(d) for d in run_dirs]
    seen = {}
    for d, a in zip(run_dirs, analyses):
        key = (a["task"], a["scenario"])
        if key in seen:
            raise ConfigError(f"{d} and {seen[key]} are both {a['task']!r} / {a['scenario']!r}; pass each analysis once")
        seen[key] = d
    all_models = T.models_in_order(analyses)

    sections = ["# jaxprobe report", "",
                f"{len(analyses)} analyses: " + "; ".join(f"{a['task']} ({a['scenario']})" for a in analyses) + ".",
                "", "## Table 2", "", T.table2_markdown(analyses), "", "## Table S1", "", T.table_s1_markdown(analyses),
                ""]
    cross_check = T.delong_markdown(analyses)
    if cross_check:
        sections += ["## AUROC: bootstrap vs DeLong", "", cross_check, ""]
    sections += ["## Figures", ""]
    for a in analyses:
        path = figure_task_scenario(a, all_models, figures_dir / f"{_slug(a['task'], a['scenario'])}.png")
        sections += [f"### {a['task']} — {a['scenario']}", "", f"![{a['task']} {a['scenario']}](figures/{path.name})", ""]
    tasks = {}
    for a in analyses:
        tasks.setdefault(a["task"], []).append(a)
    for task, group in tasks.items():
        if len(group) > 1:
            path = figure_heads(task, group, all_models, figures_dir / f"{_slug(task, 'heads')}.png")
            sections += [f"### {task} — heads compared", "", f"![{task} heads](figures/{path.name})", ""]
    sections += ["## Settings", "", _settings_table(run_dirs, analyses), ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(sections))
    T.write_pairwise_csv(out_dir / "pairwise.csv", analyses)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(lambda: _main(argv))


def _main(argv) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxprobe.report",
                                description="Table 2, Table S1 and figures from several run directories.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="directories holding results.json")
    p.add_argument("--out", default="report", help="output folder for report.md, pairwise.csv and figures/")
    args = p.parse_args(argv)
    report = build_report(args.run_dirs, args.out)
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
