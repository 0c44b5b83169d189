"""Put several analyses together: Table 2, Table S1 and the figures (``jaxprobe.figures``), in one report.md.

    python -m jaxprobe.report runs/ptx_seg_linear runs/ptx_seg_custom runs/ptx_cls runs/ctr --out report/

Each RUN_DIR holds a results.json written by `jaxprobe.results.write_analysis` (or `python -m jaxprobe.stats`).
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys
from typing import Sequence

from jaxprobe import curves as C
from jaxprobe import exports as X
from jaxprobe import figures as F
from jaxprobe import results as R
from jaxprobe import tables as T
from jaxprobe.errors import ConfigError, guarded

def _slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", "_".join(parts).lower()).strip("_")


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
    operating = T.operating_markdown(analyses)
    if operating:
        sections += ["## Classification at an operating point", "", operating, ""]
    cross_check = T.delong_markdown(analyses)
    if cross_check:
        sections += ["## AUROC: bootstrap vs DeLong", "", cross_check, ""]
    sections += ["## Figures", ""]
    for d, a in zip(run_dirs, analyses):
        path = F.figure_task_scenario(a, all_models, figures_dir / f"{_slug(a['task'], a['scenario'])}.png")
        sections += [f"### {a['task']} — {a['scenario']}", "", f"![{a['task']} {a['scenario']}](figures/{path.name})", ""]
        if len(a["models"]) > 3:  # more pairs than brackets can show: the matrix of differences
            path = F.figure_pairwise(a, figures_dir / f"{_slug(a['task'], a['scenario'], 'pairwise')}.png")
            sections += [f"![{a['task']} {a['scenario']} pairwise](figures/{path.name})", ""]
        for path in C.for_run(d, a, figures_dir, _slug(a["task"], a["scenario"])):
            sections += [f"![{path.stem.replace('_', ' ')}](figures/{path.name})", ""]
    tasks = {}
    for a in analyses:
        tasks.setdefault(a["task"], []).append(a)
    for task, group in tasks.items():
        if len(group) > 1:
            path = F.figure_heads(task, group, all_models, figures_dir / f"{_slug(task, 'heads')}.png")
            sections += [f"### {task} — heads compared", "", f"![{task} heads](figures/{path.name})", ""]
    sections += ["## Settings", "", _settings_table(run_dirs, analyses), ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(sections))
    T.write_pairwise_csv(out_dir / "pairwise.csv", analyses)
    X.write_exports(out_dir, analyses)
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
