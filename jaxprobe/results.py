"""The results.json schema of one analysis: building it from comparisons, writing it (with its table.md and
pairwise.csv, formatted by ``jaxprobe.tables``) and reading it back checked.

``write_analysis(run_dir, task=..., scenario=..., comparisons=compare_metrics(...))`` writes them;
``load_analysis(run_dir)`` reads results.json back (checked) for `jaxprobe.report`.

results.json schema (``"schema": "jaxprobe.analysis/1"``)::

    {
      "schema": "jaxprobe.analysis/1",
      "task": "pneumothorax segmentation",        # what is predicted, free text, the report's row label
      "scenario": "linear probe",                  # the head: "linear probe", "custom model", ...
      "kind": "segmentation",                      # classification | segmentation | regression
      "models": ["rad_dino", "chexagent", "biomedclip"],
      "display_names": {"rad_dino": "RAD-DINO", ...},   # how tables and figures name the models
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

import json
import math
import pathlib
from typing import Mapping

from . import exports, tables
from .encoders import registry
from .errors import RunError

SCHEMA = "jaxprobe.analysis/1"
KINDS = ("classification", "segmentation", "regression")


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
                  cases: dict | None = None, display_names: Mapping[str, str] | None = None,
                  baselines: dict | None = None, extra: dict | None = None) -> dict:
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
        # how tables and figures name each model (a registered encoder's display name unless one is given)
        "display_names": {m: (display_names or {}).get(m) or registry.display_name(m) for m in first.models},
        "n_cases": first.n_cases,
        "settings": first.settings,
        "metrics": {name: c.to_dict() for name, c in comparisons.items()},
    }
    if cases:
        out["cases"] = cases
    if baselines:  # jaxprobe.baselines.gather: {baseline: {"description", "metrics": {metric: {model: value}}}}
        out["baselines"] = baselines
    for key, value in (extra or {}).items():  # "operating_points", "seeds" (jaxprobe.run)
        if value is not None:
            out[key] = value
    return _json_safe(out)


def write_analysis(run_dir, *, task: str, scenario: str, comparisons: Mapping[str, object], kind: str | None = None,
                   cases: dict | None = None, display_names: Mapping[str, str] | None = None,
                   baselines: dict | None = None, extra: dict | None = None) -> dict[str, pathlib.Path]:
    """Write results.json, table.md and pairwise.csv into ``run_dir``; return their paths.

    ``comparisons`` is what `jaxprobe.stats.compare_metrics` returns for one analysis (one task, one head);
    ``kind`` (classification / segmentation / regression) follows from the metrics when not given.
    """
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    analysis = analysis_dict(task=task, scenario=scenario, kind=kind, comparisons=comparisons, cases=cases,
                             display_names=display_names, baselines=baselines, extra=extra)
    paths = {"results": run_dir / "results.json", "table": run_dir / "table.md", "pairwise": run_dir / "pairwise.csv"}
    paths["results"].write_text(json.dumps(analysis, indent=2) + "\n")
    tables.write_table_md(paths["table"], [analysis])
    tables.write_pairwise_csv(paths["pairwise"], [analysis])
    # Table 2, Table S1 (and operating points) as CSV and LaTeX beside table.md
    paths.update(exports.write_exports(run_dir, [analysis]))
    return paths


def load_analysis(run_dir) -> dict:
    path = pathlib.Path(run_dir) / "results.json"
    if not path.is_file():
        raise RunError(f"{path}: no results.json (write it with jaxprobe.results.write_analysis "
                                "or python -m jaxprobe.stats)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{path}: not valid JSON ({e}); re-run the statistics stage") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise RunError(f"{path}: schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("task", "scenario", "kind", "models", "settings", "metrics"):
        if key not in data:
            raise RunError(f"{path}: missing key {key!r}")
    return data
