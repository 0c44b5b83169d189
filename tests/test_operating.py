"""Operating points against scikit-learn: the chosen threshold, each statistic at it, and intervals drawn from the
very resamples the AUROC/AUPRC comparison uses."""
import numpy as np
import pytest
from sklearn.metrics import (balanced_accuracy_score, brier_score_loss, f1_score, precision_score, recall_score,
                             roc_auc_score, roc_curve)

from jaxprobe import bootstrap as boot
from jaxprobe.stats import compare
from jaxprobe.stats.compare import percentile_interval
from jaxprobe.stats.operating import choose_threshold, operating_points


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    signal = y + rng.normal(0, 0.8, n)
    a = 1 / (1 + np.exp(-signal))
    b = 1 / (1 + np.exp(-(0.6 * signal + rng.normal(0, 0.5, n))))
    return y, {"a": np.round(a, 2), "b": b}  # rounding: ties among the scores


def test_youden_and_fixed_sensitivity_thresholds_match_roc_curve():
    y, scores = _data(seed=1)
    for s in scores.values():
        fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
        assert choose_threshold(y, s) == pytest.approx(thresholds[np.argmax(tpr - fpr)])
        for target in (0.5, 0.8, 0.95):
            expected = thresholds[np.argmax(tpr >= target)]
            assert choose_threshold(y, s, "sensitivity", target) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one class"):
        choose_threshold(np.ones(5), np.linspace(0, 1, 5))


def test_statistics_at_the_threshold_are_scikit_learns():
    y, scores = _data(seed=2)
    thresholds = {"a": 0.55, "b": 0.4}
    out = operating_points(y, scores, thresholds, n_resamples=200)
    for m, s in scores.items():
        called = (s >= thresholds[m]).astype(int)
        got = {k: v["estimate"] for k, v in out["models"][m].items() if k != "threshold"}
        assert got["sensitivity"] == pytest.approx(recall_score(y, called))
        assert got["specificity"] == pytest.approx(recall_score(y, called, pos_label=0))
        assert got["ppv"] == pytest.approx(precision_score(y, called))
        assert got["npv"] == pytest.approx(precision_score(y, called, pos_label=0))
        assert got["f1"] == pytest.approx(f1_score(y, called))
        assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, called))
        assert got["brier"] == pytest.approx(brier_score_loss(y, s))
    pair = out["pairs"][0]
    assert pair["sensitivity"]["difference"] == pytest.approx(
        out["models"]["a"]["sensitivity"]["estimate"] - out["models"]["b"]["sensitivity"]["estimate"])
    assert 0 < pair["f1"]["p_value"] <= 1 and pair["f1"]["p_adjusted"] == pytest.approx(pair["f1"]["p_value"])


def test_intervals_come_from_the_resamples_of_the_auroc_comparison():
    """Expand each of the B count-matrix rows into a resampled test set; scikit-learn on those sets gives both
    the AUROC replicates of compare() and the percentile interval of the sensitivity at the threshold."""
    y, scores = _data(n=60, seed=3)
    b, seed = 150, 7
    counts = boot.resample_counts(boot.ResamplePlan(len(y), b, seed, strata=y))
    auroc = compare("auroc", y, scores, n_resamples=b, seed=seed).replicates
    threshold = 0.5
    sens = []
    for row in range(b):
        take = np.repeat(np.arange(len(y)), counts[row])
        assert auroc[0, row] == pytest.approx(roc_auc_score(y[take], scores["a"][take]))
        sens.append(recall_score(y[take], (scores["a"][take] >= threshold).astype(int)))
    out = operating_points(y, scores, {"a": threshold, "b": threshold}, n_resamples=b, seed=seed)
    low, high = percentile_interval(np.array(sens), 0.95)
    assert (out["models"]["a"]["sensitivity"]["ci_low"], out["models"]["a"]["sensitivity"]["ci_high"]) == \
        pytest.approx((low, high))


def test_pairwise_differences_seeds_and_settings_are_recorded_as_computed():
    """A model against its own copy differs by exactly zero in every resample (p = 1); a pair's interval is the
    percentile interval of the per-resample differences a - b computed here with scikit-learn's recall on the
    resample drawn by jaxprobe.bootstrap; unpaired tests give each model its own seed; the settings recorded are
    the ones given."""
    y, scores = _data(seed=4)
    scores["a_copy"] = scores["a"].copy()
    thresholds = {"a": 0.55, "b": 0.4, "a_copy": 0.55}
    out = operating_points(y, scores, thresholds, n_resamples=150, seed=3, ci_level=0.9, alpha=0.1)
    assert {k: out[k] for k in ("rule", "target_sensitivity", "chosen_on", "positive_when", "n_cases", "test",
                                "resample_seeds", "stratified")} == {
        "rule": "youden", "target_sensitivity": None, "chosen_on": "validation set",
        "positive_when": "score >= threshold", "n_cases": len(y), "test": "paired",
        "resample_seeds": {"a": 3, "b": 3, "a_copy": 3}, "stratified": True}
    assert out["statistics"] == ["sensitivity", "specificity", "ppv", "npv", "f1", "balanced_accuracy", "brier"]
    rows = {(r["model_a"], r["model_b"]): r for r in out["pairs"]}
    assert list(rows) == [("a", "b"), ("a", "a_copy"), ("b", "a_copy")]
    same = rows[("a", "a_copy")]["sensitivity"]
    assert same == {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "p_adjusted": 1.0,
                    "significant": False}
    counts = boot.resample_counts(boot.ResamplePlan(len(y), 150, 3, strata=y))
    diffs = []
    for c in counts:
        idx = np.repeat(np.arange(len(y)), c.astype(int))
        diffs.append(recall_score(y[idx], scores["a"][idx] >= 0.55) - recall_score(y[idx], scores["b"][idx] >= 0.4))
    row = rows[("a", "b")]["sensitivity"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(percentile_interval(np.array(diffs), 0.9), abs=1e-12)
    assert row["difference"] == pytest.approx(recall_score(y, scores["a"] >= 0.55) - recall_score(y, scores["b"] >= 0.4))
    assert row["p_adjusted"] == pytest.approx(min(1.0, 3 * row["p_value"]))
    assert row["significant"] == (row["p_value"] < 0.1 / 3)
    sensitivity = operating_points(y, scores, thresholds, n_resamples=20, seed=3, test="unpaired", stratified=False,
                                   rule="sensitivity", target_sensitivity=0.8)
    assert sensitivity["resample_seeds"] == {"a": 3, "b": 4, "a_copy": 5}
    assert sensitivity["rule"] == "sensitivity" and sensitivity["target_sensitivity"] == 0.8
    assert sensitivity["test"] == "unpaired" and sensitivity["stratified"] is False
    assert rows[("a", "b")]["brier"]["difference"] == pytest.approx(
        brier_score_loss(y, scores["a"]) - brier_score_loss(y, scores["b"]))


def test_target_sensitivity_bounds_rule_names_and_one_class_sets_are_checked():
    y, scores = _data(seed=5)
    fpr, tpr, thresholds = roc_curve(y, scores["a"])
    assert choose_threshold(y, scores["a"], "sensitivity", 1.0) == pytest.approx(thresholds[np.argmax(tpr >= 1.0)])
    for bad in (0, -0.1, 1.01, 2):
        with pytest.raises(ValueError, match=rf"^target sensitivity must be in \(0, 1\], got {bad}$"):
            choose_threshold(y, scores["a"], "sensitivity", bad)
    with pytest.raises(ValueError, match=r"^operating point rule must be one of \('youden', 'sensitivity'\), "
                                         r"got 'f1'$"):
        choose_threshold(y, scores["a"], "f1")
    with pytest.raises(ValueError, match=r"^the validation set has one class only \(0 positives of 4\); no threshold "
                                         r"can be chosen on it$"):
        choose_threshold(np.zeros(4), np.linspace(0, 1, 4))


def test_unstratified_intervals_and_the_default_settings():
    """stratified=False draws plain resamples (bootstrap.ResamplePlan without strata): the specificity interval is
    scikit-learn's over those; the defaults are 10,000 resamples from seed 0, paired, alpha 0.05."""
    y, scores = _data(n=40, seed=6)
    b, seed, threshold = 120, 2, 0.5
    counts = boot.resample_counts(boot.ResamplePlan(len(y), b, seed, strata=None))
    assert len({int(c[y == 1].sum()) for c in counts}) > 1  # the class counts vary between plain resamples
    spec = []
    for row in counts:
        take = np.repeat(np.arange(len(y)), row)
        spec.append(recall_score(1 - y[take], (scores["a"][take] < threshold).astype(int)))
    out = operating_points(y, scores, {"a": threshold, "b": threshold}, n_resamples=b, seed=seed, stratified=False)
    got = out["models"]["a"]["specificity"]
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(percentile_interval(np.array(spec), 0.95))
    thresholds = {"a": 0.55, "b": 0.4}
    default = operating_points(y, scores, thresholds)
    assert default == operating_points(y, scores, thresholds, n_resamples=10_000, seed=0, ci_level=0.95,
                                       stratified=True, test="paired", alpha=0.05)
    assert default != operating_points(y, scores, thresholds, n_resamples=9_999)
    assert default != operating_points(y, scores, thresholds, seed=1)
    for pair in default["pairs"]:
        for row in pair.values():
            if isinstance(row, dict):
                assert row["significant"] == (row["p_value"] < 0.05)
