"""Formatting of analyses for people: Table 2 and Table S1 as Markdown, the AUROC cross-check, pairwise.csv."""
from __future__ import annotations

import csv
import math

from .encoders import registry

PAIRWISE_COLUMNS = ("task", "scenario", "metric", "model_a", "model_b", "difference", "ci_low", "ci_high",
                    "p_value", "p_adjusted", "bonferroni_threshold", "significant")


def display_name(model: str, analyses=()) -> str:
    """The name tables and figures show: the one an analysis recorded, else the registry's, else the model id."""
    for a in analyses:
        if model in a.get("display_names", {}):
            return a["display_names"][model]
    return registry.display_name(model)


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
    header = ["Task", "Head", "Metric"] + [display_name(m, analyses) for m in models]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for a in analyses:
        for key, metric in a["metrics"].items():
            cells = [a["task"], a["scenario"], metric["display"]]
            digits = digits_for([r["estimate"] for r in metric["models"].values()], digits)
            spread = (a.get("seeds") or {}).get("metrics", {}).get(key, {})
            for m in models:
                r = metric["models"].get(m)
                seeds = (f"; seeds {_num(spread[m]['mean'], digits)} ± {_num(spread[m]['sd'], digits)}"
                         if m in spread else "")
                cells.append("" if r is None else
                             f"{_num(r['estimate'], digits)} {format_interval(r['ci_low'], r['ci_high'], digits)}"
                             + seeds)
            lines.append("| " + " | ".join(cells) + " |")
            for base in a.get("baselines", {}).values():  # trivial baselines, in italics, no CI
                values = base["metrics"].get(key)
                if values:
                    lines.append("| " + " | ".join([a["task"], f"*baseline: {base['description']}*", metric["display"]]
                                                   + [f"*{_num(values[m], digits)}*" if m in values else ""
                                                      for m in models]) + " |")
    note = (f"Point estimate ({', '.join(sorted({a['settings']['point_estimate'] for a in analyses}))}) with "
            f"{level_text} percentile bootstrap CI "
            f"({', '.join(str(b) for b in sorted({a['settings']['n_resamples'] for a in analyses}))} resamples).")
    if any(a.get("baselines") for a in analyses):
        note += " Rows in italics: trivial baselines scored on the same test cases (no CI); a head has learnt " \
                "something from the embeddings only where it beats them."
    members = sorted({a["seeds"]["members"] for a in analyses if a.get("seeds")})
    if members:
        note += (f" With {'/'.join(map(str, members))} training seeds: the estimate, CI and tests are those of the "
                 "first seed's head (member 0, paired across encoders); \"seeds m ± sd\" is the mean and standard "
                 "deviation of the metric over all seeds' heads on the full test set.")
    warnings = sorted({f"{a['task']} ({a['scenario']}): {w}" for a in analyses for m in a["metrics"].values()
                       for w in m.get("warnings", ())})
    footer = "".join(f"\n\n**Warning.** {w}" for w in warnings)
    return "**Table 2.** " + note + "\n\n" + "\n".join(lines) + footer


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
            r["task"], r["scenario"], r["metric_display"],
            f"{display_name(r['model_a'], analyses)} vs {display_name(r['model_b'], analyses)}",
            f"{_num(r['difference'], d)} {format_interval(r['ci_low'], r['ci_high'], d)}",
            format_p(r["p_value"]), format_p(r["p_adjusted"]), r["significant"]]) + " |")
    if len(lines) == 2:
        return "**Table S1.** No model pairs (one model per analysis)."
    rule = ", ".join(f"{t:.4g}" for t in sorted(t for t in thresholds if t is not None))
    return (f"**Table S1.** {test_description(analyses)}; significant when p < the Bonferroni threshold "
            f"({rule}).\n\n" + "\n".join(lines))


def test_description(analyses) -> str:
    """How the pairs were tested, for captions and footnotes: paired (one resample set for every model) or
    unpaired (independent resamples per model, the paper's "two-sample bootstrapping test")."""
    tests = sorted({a["settings"].get("test", "paired") for a in analyses})
    words = {"paired": "Paired two-sided bootstrap tests (one resample set shared by every model)",
             "unpaired": "Unpaired two-sided bootstrap tests (independent resamples per model, as the paper's "
                         "two-sample test)"}
    return "; ".join(words[t] for t in tests)


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
            lines.append("| " + " | ".join([a["task"], a["scenario"], display_name(m, analyses),
                                            format_interval(r["ci_low"], r["ci_high"], digits),
                                            format_interval(d["ci_low"], d["ci_high"], digits), "", ""]) + " |")
        for p, d in zip(metric["pairs"], dl["pairs"]):
            lines.append("| " + " | ".join([a["task"], a["scenario"],
                                            f"{display_name(p['model_a'], analyses)} − "
                                            f"{display_name(p['model_b'], analyses)}",
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


def table2_rows(analyses):
    """Table 2 as records (one per task, head, metric and model; baselines with kind "baseline")."""
    for a in analyses:
        for key, metric in a["metrics"].items():
            spread = (a.get("seeds") or {}).get("metrics", {}).get(key, {})
            for m, r in metric["models"].items():
                yield {"task": a["task"], "scenario": a["scenario"], "metric": metric["name"],
                       "metric_display": metric["display"], "model": m, "model_display": display_name(m, analyses),
                       "kind": "head", "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                       "seeds_mean": spread.get(m, {}).get("mean"), "seeds_sd": spread.get(m, {}).get("sd")}
            for base in a.get("baselines", {}).values():
                for m, value in base["metrics"].get(key, {}).items():
                    yield {"task": a["task"], "scenario": f"baseline: {base['description']}", "metric": metric["name"],
                           "metric_display": metric["display"], "model": m,
                           "model_display": display_name(m, analyses), "kind": "baseline", "estimate": value,
                           "ci_low": None, "ci_high": None, "seeds_mean": None, "seeds_sd": None}


def operating_rows(analyses):
    """The operating-point statistics as records (one per task, head, model and statistic)."""
    for a in analyses:
        op = a.get("operating_points")
        if not op or "models" not in op:
            continue
        for m, entry in op["models"].items():
            for stat in op["statistics"]:
                r = entry[stat]
                yield {"task": a["task"], "scenario": a["scenario"], "model": m,
                       "model_display": display_name(m, analyses), "rule": op["rule"], "threshold": entry["threshold"],
                       "statistic": stat, "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}


OPERATING_DISPLAY = {"sensitivity": "Sens.", "specificity": "Spec.", "ppv": "PPV", "npv": "NPV", "f1": "F1",
                     "balanced_accuracy": "Bal. acc.", "brier": "Brier"}


def operating_markdown(analyses, digits: int = 3) -> str:
    """Classification at the validation-chosen threshold: each statistic with its CI ("" without one)."""
    blocks = []
    for a in analyses:
        op = a.get("operating_points")
        if op and "skipped" in op:
            blocks.append(f"**Operating point.** Not computed for {a['task']} ({a['scenario']}): {op['skipped']}.")
            continue
        if not op:
            continue
        stats = op["statistics"]
        header = ["Task", "Head", "Model", "Threshold"] + [OPERATING_DISPLAY.get(s, s) for s in stats]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for m, entry in op["models"].items():
            lines.append("| " + " | ".join([a["task"], a["scenario"], display_name(m, analyses),
                                            _num(entry["threshold"], digits)]
                                           + [f"{_num(entry[s]['estimate'], digits)} "
                                              f"{format_interval(entry[s]['ci_low'], entry[s]['ci_high'], digits)}"
                                              for s in stats]) + " |")
        rule = ("Youden's J (max sensitivity + specificity − 1)" if op["rule"] == "youden" else
                f"the highest threshold with validation sensitivity ≥ {op['target_sensitivity']}")
        blocks.append(f"**Operating point.** Threshold per model chosen on the validation set by {rule}; a case "
                      f"is positive when its score ≥ the threshold. Test-set statistics with "
                      f"{100 * a['settings']['ci_level']:g}% percentile bootstrap CIs from the resamples of the "
                      f"AUROC/AUPRC ({op['test']}); pairwise differences and p-values in results.json and "
                      "operating_points.csv.\n\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def write_table_md(path, analyses) -> None:
    """table.md: Table 2, Table S1, the operating points and (with AUROC) the DeLong cross-check."""
    parts = [table2_markdown(analyses), table_s1_markdown(analyses), operating_markdown(analyses),
             delong_markdown(analyses)]
    with open(path, "w") as f:
        f.write("\n\n".join(p for p in parts if p) + "\n")
