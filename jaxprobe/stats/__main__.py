"""``python -m jaxprobe.stats``: bootstrap CIs and paired tests on per-model prediction files, matched by case id.

    python -m jaxprobe.stats --metric auroc --metric auprc \\
        --pred rad_dino=rad_dino.csv --pred biomedclip=biomedclip.csv \\
        --task "pneumothorax classification" --scenario "linear probe" --out runs/ptx_cls

Writes results.json, table.md and pairwise.csv into ``--out`` (see ``jaxprobe.results``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from jaxprobe import bootstrap as boot
from jaxprobe import metrics as M
from jaxprobe.errors import ConfigError, JaxprobeError, guarded
from jaxprobe.stats.compare import POINT_ESTIMATES, TESTS, compare_metrics


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jaxprobe.stats",
        description="Bootstrap CIs and paired tests on per-model prediction files, matched by case id.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pred", action="append", required=True, metavar="MODEL=PATH",
                   help="one per model. Classification/regression: CSV with case_id, y_true, score. "
                        "Segmentation: CSV with case_id, intersection, pred_area, true_area, or a folder of "
                        "PNG masks named <case_id>.png (needs --true-masks)")
    p.add_argument("--metric", action="append", required=True,
                   help="auroc, auprc, average_precision, pr_auc_trapezoid, dice, iou, r2, mse (repeatable)")
    p.add_argument("--out", required=True, help="run directory for results.json, table.md, pairwise.csv")
    p.add_argument("--task", required=True, help='e.g. "pneumothorax segmentation"')
    p.add_argument("--scenario", default="linear probe", help='head, e.g. "linear probe" or "custom model"')
    p.add_argument("--true-masks", help="folder of true PNG masks when predictions are mask folders")
    p.add_argument("--mask-values", choices=("probability", "label"), default="probability",
                   help="predicted PNGs hold probabilities scaled to the integer range, or labels (nonzero = mask)")
    p.add_argument("--intersect", action="store_true",
                   help="use the cases present in every file instead of stopping on mismatched case ids")
    p.add_argument("--n-resamples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ci-level", type=float, default=0.95)
    p.add_argument("--no-stratify", action="store_true", help="resample AUROC/AUPRC cases without regard to class")
    p.add_argument("--degenerate", choices=boot.DEGENERATE_RULES, default="redraw",
                   help="unstratified one-class resamples: redraw them, or drop them (NaN)")
    p.add_argument("--empty-mask-rule", choices=M.EMPTY_MASK_RULES, default="zero")
    p.add_argument("--mask-threshold", type=float, default=0.5)
    p.add_argument("--pr-auc", choices=M.PR_AUC_DEFINITIONS, default="average_precision",
                   help="what --metric auprc means")
    p.add_argument("--point-estimate", choices=POINT_ESTIMATES, default="full_sample")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--test", choices=TESTS, default="paired",
                   help="paired: one resample set for every model (models scored on one test set); unpaired: "
                        "independent resamples per model (the paper's two-sample test)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(lambda: _main(argv))


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _compare_files(args)
    except JaxprobeError:
        raise
    except ValueError as e:  # the statistics API rejects a setting given on the command line
        raise ConfigError(str(e)) from None


def _compare_files(args) -> int:
    from jaxprobe import predictions, results as results_io

    sources = {}
    for spec in args.pred:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--pred expects MODEL=PATH, got {spec!r}")
        if name in sources:
            raise ConfigError(f"--pred names model {name!r} twice")
        sources[name] = path
    infos = [M.resolve_metric(m, args.pr_auc) for m in args.metric]
    kinds = {i.kind for i in infos}
    if len(kinds) != 1:
        raise ConfigError(f"metrics {args.metric} mix kinds; run classification, regression and segmentation "
                          "separately")
    kind = kinds.pop()
    loaded = predictions.load_predictions(kind, sources, true_masks=args.true_masks,
                                          mask_threshold=args.mask_threshold, mask_values=args.mask_values,
                                          intersect=args.intersect)
    for line in loaded.report_lines():
        print(line, file=sys.stderr)
    comparisons = compare_metrics(
        [i.name for i in infos], loaded.y_true, loaded.predictions, n_resamples=args.n_resamples, seed=args.seed,
        ci_level=args.ci_level, stratify=(False if args.no_stratify else None) if kind == "ranking" else None,
        degenerate=args.degenerate, empty_mask_rule=args.empty_mask_rule, mask_threshold=args.mask_threshold,
        pr_auc=args.pr_auc, point_estimate=args.point_estimate, alpha=args.alpha, test=args.test)
    paths = results_io.write_analysis(args.out, task=args.task, scenario=args.scenario, comparisons=comparisons,
                                      cases=loaded.case_summary())
    print((paths["table"]).read_text())
    for p in paths.values():
        print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
