"""One analysis's outputs in a run directory: results.json, table.md (Table 2 layout), pairwise.csv (Table S1).

``write_analysis(run_dir, task=..., scenario=..., comparisons=compare_metrics(...))`` writes them;
``load_analysis(run_dir)`` reads results.json back (checked) for `jaxprobe.report`.

results.json schema (``"schema": "jaxprobe.analysis/1"``)::

    {
      "schema": "jaxprobe.analysis/1",
      "task": "pneumothorax segmentation",        # what is predicted, free text, the report's row label
      "scenario": "linear probe",                  # the head: "linear probe", "custom model", ...
      "kind": "segmentation",                      # classification | segmentation | regression
      "models": ["rad_dino", "chexagent", "biomedclip"],
      "n_cases": 476,
      "cases": {...},                              # optional: how prediction files were matched
      "settings": {                                # every choice that changes a number
        "n_resamples": 10000, "seed": 0, "rng": "...", "ci_level": 0.95, "ci_method": "percentile",
        "stratified": false,                       # class-stratified resampling (AUROC/AUPRC)
        "degenerate_resamples": null,              # "redraw" | "drop" for unstratified AUROC/AUPRC
        "n_redrawn_resamples": null,
        "empty_mask_rule": "zero",                 # zero | one | exclude (Dice/IoU of two empty masks)
        "mask_threshold": 0.5,
        "pr_auc_definition": null,                 # ["average_precision"] or ["pr_auc_trapezoid"]
        "point_estimate": "full_sample",           # or "bootstrap_mean" (the authors' convention)
        "p_value": "...", "alpha": 0.05, "n_comparisons": 3, "bonferroni_threshold": 0.0166667
      },
      "metrics": {
        "dice": {
          "name": "dice", "display": "Dice", "definition": "...", "higher_is_better": true,
          "models": {"rad_dino": {"estimate": 0.41, "ci_low": 0.39, "ci_high": 0.43, "full_sample": 0.41,
                                  "bootstrap_mean": 0.41, "bootstrap_sd": 0.01, "n_valid": 10000}, ...},
          "pairs": [{"model_a": "rad_dino", "model_b": "chexagent", "difference": 0.02, "ci_low": 0.01,
                     "ci_high": 0.03, "p_value": 0.0001, "p_adjusted": 0.0003, "significant": true,
                     "n_valid": 10000}, ...],
          "delong": {...}                          # AUROC only: DeLong CIs and pairwise z tests
        }, ...
      }
    }

Differences are model_a − model_b; "significant" means p_value < bonferroni_threshold.
"""
from __future__ import annotations

import csv
import json
import math
import pathlib
from typing import Mapping

SCHEMA = "jaxprobe.analysis/1"
KINDS = ("classification", "segmentation", "regression")
DISPLAY_NAMES = {"rad_dino": "RAD-DINO", "chexagent": "CheXagent", "biomedclip": "BiomedCLIP"}
PAIRWISE_COLUMNS = ("task", "scenario", "metric", "model_a", "model_b", "difference", "ci_low", "ci_high",
                    "p_value", "p_adjusted", "bonferroni_threshold", "significant")


def display_name(model: str) -> str:
    return DISPLAY_NAMES.get(model, model)


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


KIND_OF_METRIC = {"ranking": "classification", "mask": "segmentation", "regression": "regression"}


def analysis_dict(*, task: str, scenario: str, comparisons: Mapping[str, object], kind: str | None = None,
                  cases: dict | None = None) -> dict:
    if not comparisons:
        raise ValueError("no comparisons to write")
    inferred = KIND_OF_METRIC[next(iter(comparisons.values())).metric.kind]
    kind = inferred if kind is None else kind
    if kind != inferred:
        raise ValueError(f"kind {kind!r} does not match the metrics, which are {inferred} metrics")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    first = next(iter(comparisons.values()))
    for c in comparisons.values():
        if c.settings != first.settings or list(c.models) != list(first.models):
            raise ValueError("comparisons of one analysis must share models and settings (use compare_metrics)")
    out = {
        "schema": SCHEMA,
        "task": task,
        "scenario": scenario,
        "kind": kind,
        "models": list(first.models),
        "n_cases": first.n_cases,
        "settings": first.settings,
        "metrics": {name: c.to_dict() for name, c in comparisons.items()},
    }
    if cases:
        out["cases"] = cases
    return _json_safe(out)


def write_analysis(run_dir, *, task: str, scenario: str, comparisons: Mapping[str, object], kind: str | None = None,
                   cases: dict | None = None) -> dict[str, pathlib.Path]:
    """Write results.json, table.md and pairwise.csv into ``run_dir``; return their paths.

    ``comparisons`` is what `jaxprobe.stats.compare_metrics` returns for one analysis (one task, one head);
    ``kind`` (classification / segmentation / regression) follows from the metrics when not given.
    """
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    analysis = analysis_dict(task=task, scenario=scenario, kind=kind, comparisons=comparisons, cases=cases)
    paths = {"results": run_dir / "results.json", "table": run_dir / "table.md", "pairwise": run_dir / "pairwise.csv"}
    paths["results"].write_text(json.dumps(analysis, indent=2) + "\n")
    parts = [table2_markdown([analysis]), table_s1_markdown([analysis]), delong_markdown([analysis])]
    paths["table"].write_text("\n\n".join(p for p in parts if p) + "\n")
    write_pairwise_csv(paths["pairwise"], [analysis])
    return paths


def load_analysis(run_dir) -> dict:
    path = pathlib.Path(run_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results.json (write it with jaxprobe.results.write_analysis "
                                "or python -m jaxprobe.stats)")
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("task", "scenario", "kind", "models", "settings", "metrics"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}")
    return data


# ---------------------------------------------------------------------------------------------
# Formatting shared by table.md and the report


def _num(x, digits=3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def digits_for(values, minimum: int = 3) -> int:
    """Decimals that show three significant figures of the largest value (MSE of CTR is ~1e-3)."""
    finite = [abs(v) for v in values if v is not None and v == v and v != 0]
    if not finite:
        return minimum
    return max(minimum, 2 - int(math.floor(math.log10(max(finite)))))


def format_interval(low, high, digits=3) -> str:
    # An en dash next to a minus sign reads as a range of negatives; use a comma when a bound is negative.
    if low is not None and high is not None and min(low, high) < 0:
        return f"({_num(low, digits)}, {_num(high, digits)})"
    return f"({_num(low, digits)}–{_num(high, digits)})"


def format_p(p) -> str:
    if p is None:
        return "–"
    return f"{p:.4f}" if p >= 1e-3 else f"{p:.1e}"


def models_in_order(analyses) -> list[str]:
    seen = []
    for a in analyses:
        for m in a["models"]:
            if m not in seen:
                seen.append(m)
    return seen


def table2_markdown(analyses, digits: int = 3) -> str:
    """Rows: task · scenario · metric; columns: models; cells: estimate (CI)."""
    models = models_in_order(analyses)
    level = sorted({a["settings"]["ci_level"] for a in analyses})
    level_text = "/".join(f"{100 * x:g}%" for x in level)
    header = ["Task", "Head", "Metric"] + [display_name(m) for m in models]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for a in analyses:
        for metric in a["metrics"].values():
            cells = [a["task"], a["scenario"], metric["display"]]
            digits = digits_for([r["estimate"] for r in metric["models"].values()], digits)
            for m in models:
                r = metric["models"].get(m)
                cells.append("" if r is None else
                             f"{_num(r['estimate'], digits)} {format_interval(r['ci_low'], r['ci_high'], digits)}")
            lines.append("| " + " | ".join(cells) + " |")
    note = (f"Point estimate ({', '.join(sorted({a['settings']['point_estimate'] for a in analyses}))}) with "
            f"{level_text} percentile bootstrap CI ({', '.join(str(b) for b in sorted({a['settings']['n_resamples'] for a in analyses}))} resamples).")
    return "**Table 2.** " + note + "\n\n" + "\n".join(lines)


def table_s1_rows(analyses):
    for a in analyses:
        threshold = a["settings"].get("bonferroni_threshold")
        for metric in a["metrics"].values():
            for p in metric["pairs"]:
                yield {"task": a["task"], "scenario": a["scenario"], "metric": metric["name"],
                       "metric_display": metric["display"],
                       "model_a": p["model_a"], "model_b": p["model_b"], "difference": p["difference"],
                       "ci_low": p["ci_low"], "ci_high": p["ci_high"], "p_value": p["p_value"],
                       "p_adjusted": p["p_adjusted"], "bonferroni_threshold": threshold,
                       "significant": "yes" if p["significant"] else "no"}


def table_s1_markdown(analyses, digits: int = 3) -> str:
    header = ["Task", "Head", "Metric", "Comparison", "Difference (CI)", "p", "Bonferroni p", "Significant"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    thresholds = set()
    for r in table_s1_rows(analyses):
        thresholds.add(r["bonferroni_threshold"])
        d = digits_for([r["ci_low"], r["ci_high"], r["difference"]], digits)
        lines.append("| " + " | ".join([
            r["task"], r["scenario"], r["metric_display"], f"{display_name(r['model_a'])} vs {display_name(r['model_b'])}",
            f"{_num(r['difference'], d)} {format_interval(r['ci_low'], r['ci_high'], d)}",
            format_p(r["p_value"]), format_p(r["p_adjusted"]), r["significant"]]) + " |")
    if len(lines) == 2:
        return "**Table S1.** No model pairs (one model per analysis)."
    rule = ", ".join(f"{t:.4g}" for t in sorted(t for t in thresholds if t is not None))
    return (f"**Table S1.** Paired two-sided bootstrap tests; significant when p < the Bonferroni threshold "
            f"({rule}).\n\n" + "\n".join(lines))


def delong_markdown(analyses, digits: int = 3) -> str:
    """AUROC cross-check: bootstrap CI and paired p next to DeLong's CI and z-test p ("" if no AUROC)."""
    header = ["Task", "Head", "Model or pair", "Bootstrap CI", "DeLong CI", "Bootstrap p", "DeLong p"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for a in analyses:
        metric = a["metrics"].get("auroc")
        if not metric or "delong" not in metric:
            continue
        dl = metric["delong"]
        for m, r in metric["models"].items():
            d = dl["models"][m]
            lines.append("| " + " | ".join([a["task"], a["scenario"], display_name(m),
                                            format_interval(r["ci_low"], r["ci_high"], digits),
                                            format_interval(d["ci_low"], d["ci_high"], digits), "", ""]) + " |")
        for p, d in zip(metric["pairs"], dl["pairs"]):
            lines.append("| " + " | ".join([a["task"], a["scenario"],
                                            f"{display_name(p['model_a'])} − {display_name(p['model_b'])}",
                                            format_interval(p["ci_low"], p["ci_high"], digits),
                                            format_interval(d["ci_low"], d["ci_high"], digits),
                                            format_p(p["p_value"]), format_p(d["p_value"])]) + " |")
    if len(lines) == 2:
        return ""
    return "**AUROC cross-check.** Percentile bootstrap vs DeLong (normal approximation), unadjusted p.\n\n" + \
        "\n".join(lines)


def write_pairwise_csv(path, analyses) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PAIRWISE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in table_s1_rows(analyses):
            writer.writerow(row)
