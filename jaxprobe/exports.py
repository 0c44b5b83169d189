"""Paper-ready exports of analyses: Table 2, Table S1 and the operating points as CSV and as LaTeX (booktabs).

``write_exports(folder, analyses)`` writes, beside ``table.md``: ``table2.csv`` / ``table2.tex``,
``table_s1.csv`` / ``table_s1.tex`` and, for classification, ``operating_points.csv`` / ``operating_points.tex``.
The CSVs hold full-precision numbers (one record per cell); the LaTeX tables the rounded ones the Markdown shows,
for ``\\usepackage{booktabs}``.
"""
from __future__ import annotations

import csv
import pathlib

from . import tables as T

TABLE2_COLUMNS = ("task", "scenario", "kind", "metric", "model", "estimate", "ci_low", "ci_high", "seeds_mean",
                  "seeds_sd")
OPERATING_COLUMNS = ("task", "scenario", "model", "rule", "threshold", "statistic", "estimate", "ci_low", "ci_high")
_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  "–": "--", "−": "$-$", "²": "$^2$", "≥": r"$\geq$", "±": r"$\pm$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def booktabs(header, rows, caption: str, label: str, align: str | None = None) -> str:
    """A ``table`` with a booktabs ``tabular`` (toprule / midrule / bottomrule); every cell is escaped."""
    align = align or "l" * len(header)
    body = [" & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    body += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    return "\n".join([r"\begin{table}[ht]", r"\centering", rf"\caption{{{latex_escape(caption)}}}",
                      rf"\label{{{label}}}", rf"\begin{{tabular}}{{{align}}}", r"\toprule", *body, r"\bottomrule",
                      r"\end{tabular}", r"\end{table}", ""])


def _write_csv(path: pathlib.Path, columns, records) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})


def _cell(r: dict, digits: int) -> str:
    text = T._num(r["estimate"], digits)
    if r["ci_low"] is not None:
        text += " " + T.format_interval(r["ci_low"], r["ci_high"], digits)
    if r.get("seeds_mean") is not None:
        text += f"; {T._num(r['seeds_mean'], digits)} ± {T._num(r['seeds_sd'], digits)}"
    return text


def table2_latex(analyses, digits: int = 3) -> str:
    models = T.models_in_order(analyses)
    rows, index = [], {}
    for r in T.table2_rows(analyses):
        key = (r["task"], r["scenario"], r["metric_display"])
        if key not in index:
            index[key] = len(rows)
            rows.append([*key] + [""] * len(models))
        rows[index[key]][3 + models.index(r["model"])] = _cell(r, digits)
    header = ["Task", "Head", "Metric"] + [T.display_name(m, analyses) for m in models]
    caption = T.table2_markdown(analyses).split("\n\n")[0].removeprefix("**Table 2.** ").replace("Rows in italics", "Baseline rows")
    return booktabs(header, rows, "Table 2. " + caption, "tab:table2", "lll" + "c" * len(models))


def table_s1_latex(analyses, digits: int = 3) -> str:
    rows = []
    for r in T.table_s1_rows(analyses):
        d = T.digits_for([r["ci_low"], r["ci_high"], r["difference"]], digits)
        rows.append([r["task"], r["scenario"], r["metric_display"],
                     f"{T.display_name(r['model_a'], analyses)} vs {T.display_name(r['model_b'], analyses)}",
                     f"{T._num(r['difference'], d)} {T.format_interval(r['ci_low'], r['ci_high'], d)}",
                     T.format_p(r["p_value"]), T.format_p(r["p_adjusted"]), r["significant"]])
    header = ["Task", "Head", "Metric", "Comparison", "Difference (CI)", "p", "Bonferroni p", "Significant"]
    return booktabs(header, rows, f"Table S1. {T.test_description(analyses)}.", "tab:tableS1", "llllcccc")


def operating_latex(analyses, digits: int = 3) -> str:
    rows, index, stats = [], {}, []
    for r in T.operating_rows(analyses):
        if r["statistic"] not in stats:
            stats.append(r["statistic"])
        key = (r["task"], r["scenario"], r["model_display"])
        if key not in index:
            index[key] = len(rows)
            rows.append([*key, T._num(r["threshold"], digits)])
        rows[index[key]].append(f"{T._num(r['estimate'], digits)} {T.format_interval(r['ci_low'], r['ci_high'], digits)}")
    header = ["Task", "Head", "Model", "Threshold"] + [T.OPERATING_DISPLAY.get(s, s) for s in stats]
    return booktabs(header, rows, "Classification at the operating point chosen on the validation set.",
                    "tab:operating", "lll" + "c" * (1 + len(stats)))


def write_exports(folder, analyses) -> dict[str, pathlib.Path]:
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("table2.csv", "table2.tex", "table_s1.csv", "table_s1.tex")}
    _write_csv(paths["table2.csv"], TABLE2_COLUMNS, T.table2_rows(analyses))
    paths["table2.tex"].write_text(table2_latex(analyses))
    T.write_pairwise_csv(paths["table_s1.csv"], analyses)
    paths["table_s1.tex"].write_text(table_s1_latex(analyses))
    if any("models" in (a.get("operating_points") or {}) for a in analyses):
        for name in ("operating_points.csv", "operating_points.tex"):
            paths[name] = folder / name
        _write_csv(paths["operating_points.csv"], OPERATING_COLUMNS, T.operating_rows(analyses))
        paths["operating_points.tex"].write_text(operating_latex(analyses))
    return paths
