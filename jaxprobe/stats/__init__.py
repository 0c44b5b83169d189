"""Statistics between models scored on one test set: bootstrap CIs and tests (``compare``, ``compare_metrics``);
``python -m jaxprobe.stats`` is the command line on prediction files.

Python API::

    from jaxprobe.stats import compare
    result = compare("auroc", y_true, {"rad_dino": s1, "biomedclip": s2}, n_resamples=10_000, seed=0)
    result.models["rad_dino"].ci_low, result.pairs[0].p_value

    # one analysis of a run: several metrics from the same resamples, written into the run directory
    comparisons = compare_metrics(["dice", "iou"], None, {"rad_dino": MaskStatistics(...), ...})
    jaxprobe.results.write_analysis(run_dir, task="pneumothorax segmentation", scenario="custom model",
                                    comparisons=comparisons)
"""
from .compare import (POINT_ESTIMATES, TESTS, Comparison, ModelResult, PairResult, compare, compare_metrics,
                      paired_p_value, percentile_interval)

__all__ = ["POINT_ESTIMATES", "TESTS", "Comparison", "ModelResult", "PairResult", "compare", "compare_metrics",
           "paired_p_value", "percentile_interval"]
