"""compare(): paired p-values, Bonferroni verdicts, CIs, DeLong; simulations of p-value calibration and CI coverage."""

import math
import re

import numpy as np
import pytest
from scipy import stats as sps

from jaxprobe import metrics as M
from jaxprobe.delong import delong
from jaxprobe.stats import compare, compare_metrics, paired_p_value


def _three_models(seed=0, n=300):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    return y, {"strong": rng.normal(2.5 * y, 1), "weak": rng.normal(0.3 * y, 1), "weak_copy": None}


def test_identical_predictions_give_p_one():
    y, preds = _three_models()
    preds["weak_copy"] = preds["weak"].copy()
    result = compare("auroc", y, preds, n_resamples=500, seed=1)
    pair = result.pair("weak", "weak_copy")
    assert pair.p_value == 1.0 and pair.p_adjusted == 1.0 and not pair.significant
    assert pair.difference == 0 and pair.ci_low == 0 and pair.ci_high == 0


def test_clearly_different_models_give_the_smallest_p_and_bonferroni_verdicts():
    y, preds = _three_models()
    preds["weak_copy"] = preds["weak"] + np.random.default_rng(5).normal(0, 0.01, y.size)
    B = 999
    result = compare("auroc", y, preds, n_resamples=B, seed=2)
    assert result.settings["bonferroni_threshold"] == pytest.approx(0.05 / 3)
    assert result.settings["n_comparisons"] == 3
    strong = result.pair("strong", "weak")
    assert strong.p_value == pytest.approx(1 / (B + 1))          # never 0
    assert strong.p_adjusted == pytest.approx(3 / (B + 1)) and strong.significant
    assert strong.difference > 0.3 and strong.ci_low > 0
    for p in result.pairs:
        assert p.p_adjusted == pytest.approx(min(1.0, 3 * p.p_value))
        assert p.significant == (p.p_value < 0.05 / 3)
    assert not result.pair("weak", "weak_copy").significant


def test_paired_p_value_recentres_and_adds_one():
    d = np.array([0.1, 0.2, 0.3, np.nan])
    # |d - 0.2| >= 0.2 holds for none of 0.1, 0.2, 0.3 -> (1 + 0) / (3 + 1)
    assert paired_p_value(d, 0.2) == pytest.approx(0.25)
    # |0 - 0.25| and |-0.5 - 0.25| reach 0.25, |0.5 - 0.25| does too (>=), |0.3 - 0.25| does not -> (1 + 3) / (4 + 1)
    assert paired_p_value(np.array([0.0, 0.5, -0.5, 0.3]), 0.25) == pytest.approx(4 / 5)
    assert np.isnan(paired_p_value(np.array([0.1, 0.2]), np.nan))


def test_estimates_cis_and_point_estimate_conventions():
    y, preds = _three_models(3)
    preds.pop("weak_copy")
    full = compare("auprc", y, preds, n_resamples=400, seed=0)
    assert full.metric.name == "average_precision"
    for name, r in full.models.items():
        assert r.estimate == pytest.approx(M.average_precision(y, preds[name]), abs=1e-12)
        assert r.ci_low < r.estimate < r.ci_high
        values = full.replicates[list(full.models).index(name)]
        assert (r.ci_low, r.ci_high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))
    mean = compare("auprc", y, preds, n_resamples=400, seed=0, point_estimate="bootstrap_mean", ci_level=0.9)
    for name, r in mean.models.items():
        assert r.estimate == pytest.approx(full.replicates[list(full.models).index(name)].mean())
        assert full.models[name].ci_low < r.ci_low and r.ci_high < full.models[name].ci_high
    trapezoid = compare("auprc", y, preds, n_resamples=50, pr_auc="trapezoid")
    assert trapezoid.metric.name == "pr_auc_trapezoid"
    assert trapezoid.settings["pr_auc_definition"] == ["pr_auc_trapezoid"]


def test_resamples_are_shared_whatever_the_set_of_models():
    y, preds = _three_models(4)
    preds.pop("weak_copy")
    together = compare_metrics(["auroc", "auprc"], y, preds, n_resamples=300, seed=7)
    alone = compare("auroc", y, {"weak": preds["weak"]}, n_resamples=300, seed=7)
    np.testing.assert_array_equal(together["auroc"].replicates[1], alone.replicates[0])


def test_masks_statistics_and_arrays_give_the_same_comparison():
    rng = np.random.default_rng(0)
    true = rng.random((30, 12, 12)) < 0.3
    probs = {m: np.clip(true * w + rng.random((30, 12, 12)) * 0.6, 0, 1) for m, w in (("a", 0.5), ("b", 0.2))}
    from_masks = compare("dice", true, probs, n_resamples=200, seed=0)
    stats = {m: M.mask_statistics(p, true) for m, p in probs.items()}
    from_stats = compare("dice", None, stats, n_resamples=200, seed=0)
    np.testing.assert_array_equal(from_masks.replicates, from_stats.replicates)
    assert from_masks.models["a"].estimate == pytest.approx(np.mean(M.dice(probs["a"], true)))
    assert from_masks.settings["empty_mask_rule"] == "zero" and from_masks.settings["stratified"] is False


def test_bad_inputs_are_reported():
    y, preds = _three_models()
    preds.pop("weak_copy")
    with pytest.raises(ValueError, match="'weak'.*shape"):
        compare("auroc", y, {"strong": preds["strong"], "weak": preds["weak"][:-1]}, n_resamples=10)
    with pytest.raises(ValueError, match="no classes"):
        compare("mse", np.ones(5) + np.arange(5), {"a": np.arange(5.0)}, n_resamples=10, stratify=True)
    with pytest.raises(ValueError, match="mix kinds"):
        compare_metrics(["auroc", "mse"], y, preds, n_resamples=10)
    a = M.MaskStatistics(np.array([1, 2]), np.array([2, 2]), np.array([3, 4]))
    b = M.MaskStatistics(np.array([1, 2]), np.array([2, 2]), np.array([3, 5]))
    with pytest.raises(ValueError, match="disagree on the true masks.*case index 1"):
        compare("dice", None, {"a": a, "b": b}, n_resamples=10)


def _delong_brute_force(y, scores):
    """DeLong's components straight from the definition psi(x, y) over all positive-negative pairs."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    return psi.mean(axis=(1, 2)), np.cov(v10) / pos.shape[1] + np.cov(v01) / neg.shape[1]


def test_delong_matches_its_definition_and_the_bootstrap():
    rng = np.random.default_rng(2)
    n = 400
    y = (rng.random(n) < 0.3).astype(int)
    scores = {"a": np.round(rng.normal(y, 1), 1), "b": np.round(rng.normal(0.7 * y, 1), 1), "c": rng.normal(y, 2)}
    result = delong(y, scores)
    auc, cov = _delong_brute_force(y, np.stack(list(scores.values())))
    np.testing.assert_allclose(result.auroc, auc, atol=1e-12)
    np.testing.assert_allclose(result.covariance, cov, atol=1e-12)
    boot = compare("auroc", y, scores, n_resamples=2000, seed=0)
    for i, m in enumerate(scores):
        assert boot.delong["models"][m]["auroc"] == pytest.approx(M.auroc(y, scores[m]), abs=1e-12)
        assert boot.models[m].bootstrap_sd == pytest.approx(np.sqrt(cov[i, i]), rel=0.15)
    for dl in boot.delong["pairs"]:
        assert dl["p_value"] == pytest.approx(boot.pair(dl["model_a"], dl["model_b"]).p_value, abs=0.05)


def test_p_values_are_roughly_uniform_when_models_are_equally_good():
    rng = np.random.default_rng(123)
    p_values = []
    for _ in range(120):
        y = np.r_[np.ones(80, int), np.zeros(120, int)]
        scores = {"a": rng.normal(0.8 * y, 1), "b": rng.normal(0.8 * y, 1)}
        p_values.append(compare("auroc", y, scores, n_resamples=400, seed=int(rng.integers(1 << 30)),
                                with_delong=False).pairs[0].p_value)
    p_values = np.array(p_values)
    assert sps.kstest(p_values, "uniform").pvalue > 1e-3
    assert 0.0 <= np.mean(p_values < 0.05) <= 0.12


def test_ci_coverage_is_near_nominal():
    rng = np.random.default_rng(321)
    shift = 1.0
    true_auc = sps.norm.cdf(shift / np.sqrt(2))           # binormal model with unit variances
    covered_auc, covered_mse = [], []
    for _ in range(120):
        y = np.r_[np.ones(100, int), np.zeros(100, int)]
        score = rng.normal(shift * y, 1)
        r = compare("auroc", y, {"m": score}, n_resamples=400, seed=int(rng.integers(1 << 30)), with_delong=False)
        covered_auc.append(r.models["m"].ci_low <= true_auc <= r.models["m"].ci_high)
        target = rng.normal(0, 1, 200)
        r = compare("mse", target, {"m": target + rng.normal(0, 1, 200)}, n_resamples=400,
                    seed=int(rng.integers(1 << 30)))
        covered_mse.append(r.models["m"].ci_low <= 1.0 <= r.models["m"].ci_high)
    assert 0.87 <= np.mean(covered_auc) <= 0.99
    assert 0.87 <= np.mean(covered_mse) <= 0.99


def test_per_model_truth_geometry_is_accepted_only_when_asked():
    from jaxprobe.metrics import MaskStatistics
    from jaxprobe.stats import compare_metrics

    rng = np.random.default_rng(0)
    true_a = rng.integers(5, 10, 30).astype(float) * 10
    true_b = true_a * 4  # the same cases on a grid twice as fine
    a = MaskStatistics(true_a * 0.8, true_a, true_a)
    b = MaskStatistics(true_b * 0.5, true_b, true_b)
    with pytest.raises(ValueError, match="disagree on the true masks"):
        compare_metrics(["dice"], None, {"a": a, "b": b}, n_resamples=200)
    out = compare_metrics(["dice"], None, {"a": a, "b": b}, n_resamples=200, shared_truth=False)
    assert out["dice"].settings["true_masks"] == "per_model_geometry"
    assert out["dice"].models["a"].estimate == pytest.approx(0.8) and out["dice"].models["b"].estimate == pytest.approx(0.5)
    assert out["dice"].pairs[0].significant


def _rejections(test: str, gap: float, rng, trials: int = 150, n: int = 200) -> float:
    """How often ``test`` calls two correlated regressors' MSEs different at 5 %; model b's own error is larger
    by ``gap`` (0 = the null). Both share most of their error, as encoders probed on one test set do."""
    rejected = 0
    for _ in range(trials):
        y = rng.normal(0, 1, n)
        shared = rng.normal(0, 1, n)
        preds = {"a": y + shared + rng.normal(0, 0.3, n), "b": y + shared + rng.normal(0, 0.3 + gap, n)}
        r = compare("mse", y, preds, n_resamples=300, seed=int(rng.integers(1 << 30)), test=test)
        rejected += r.pairs[0].p_value < 0.05
    return rejected / trials


def test_paired_and_unpaired_tests_hold_their_size_and_pairing_adds_power():
    """The paper's unpaired two-sample test and jaxprobe's paired default both keep the false-positive rate
    at about 5 % under the null; on correlated models (shared error) the paired test finds a real difference
    far more often, because pairing cancels the shared part of the resampling noise."""
    rng = np.random.default_rng(2024)
    for test in ("paired", "unpaired"):
        assert _rejections(test, 0.0, rng) <= 0.1, test
    paired, unpaired = _rejections("paired", 0.3, rng), _rejections("unpaired", 0.3, rng)
    assert paired >= 0.6 and paired > unpaired + 0.3, (paired, unpaired)


def test_unpaired_test_draws_independent_recorded_resamples():
    rng = np.random.default_rng(7)
    y = rng.normal(0, 1, 50)
    preds = {"a": y + rng.normal(0, 1, 50), "b": y + rng.normal(0, 1, 50), "c": y + rng.normal(0, 1, 50)}
    paired = compare("mse", y, preds, n_resamples=200, seed=11)
    unpaired = compare("mse", y, preds, n_resamples=200, seed=11, test="unpaired")
    assert unpaired.settings["test"] == "unpaired" and unpaired.settings["resample_seeds"] == {"a": 11, "b": 12, "c": 13}
    assert paired.settings["test"] == "paired" and paired.settings["resample_seeds"] is None
    np.testing.assert_allclose(paired.replicates[0], unpaired.replicates[0], rtol=1e-13)  # model a: the same seed
    for i, m in enumerate(preds):  # each model's resamples are those of a one-model run with its recorded seed
        alone = compare("mse", y, {m: preds[m]}, n_resamples=200, seed=unpaired.settings["resample_seeds"][m])
        np.testing.assert_allclose(unpaired.replicates[i], alone.replicates[0], rtol=1e-13)
    assert not np.array_equal(paired.replicates[1], unpaired.replicates[1])
    with pytest.raises(ValueError, match="test must be one of"):
        compare("mse", y, preds, n_resamples=10, test="welch")


def test_undefined_p_stays_undefined_after_bonferroni_and_small_sets_are_flagged():
    """p_adjusted was 1.0 where p was NaN; three cases gave AUROC 1.000 (1.000-1.000) without a word."""
    from jaxprobe import tables
    from jaxprobe.stats.compare import bonferroni

    assert np.isnan(bonferroni(float("nan"), 3)) and bonferroni(0.01, 3) == pytest.approx(0.03)
    assert bonferroni(0.5, 3) == 1.0
    y = np.array([0, 1, 1])
    r = compare("auroc", y, {"a": np.array([0.1, 0.8, 0.9]), "b": np.array([0.2, 0.7, 0.95])}, n_resamples=200)
    assert r.warnings and "1 negative" in r.warnings[0]
    assert "warnings" in r.to_dict()
    analysis = {"task": "t", "scenario": "s", "settings": {"ci_level": 0.95, "point_estimate": "full_sample",
                                                           "n_resamples": 200},
                "models": ["a", "b"], "display_names": {"a": "a", "b": "b"}, "metrics": {"auroc": r.to_dict()}}
    assert "**Warning.** t (s): small test set: 2 positive, 1 negative" in tables.table2_markdown([analysis])
    rng = np.random.default_rng(0)
    big = rng.integers(0, 2, 200)
    assert not compare("auroc", big, {"a": rng.random(200), "b": rng.random(200)}, n_resamples=100).warnings


def test_ranking_resamples_are_stratified_by_class_as_the_settings_say():
    """One positive in ten cases: a stratified resample draws that positive exactly once, so AUROC and AUPRC are
    defined on every resample even when one-class resamples are dropped rather than redrawn (unstratified, about
    0.9**10 = 35 % of them would hold no positive). Oracle: scikit-learn on each row of the stratified count
    matrix."""
    from sklearn import metrics as skm

    from jaxprobe import bootstrap as bs

    y = np.zeros(10, int)
    y[3] = 1
    scores = {"a": np.linspace(0.0, 0.9, 10), "b": np.array([0.5, 0.1, 0.9, 0.6, 0.2, 0.8, 0.3, 0.7, 0.4, 0.0])}
    B = 200
    dropped = compare_metrics(["auroc", "auprc"], y, scores, n_resamples=B, seed=5, degenerate="drop",
                              with_delong=False)
    for result in dropped.values():
        assert result.settings["stratified"] is True
        assert [r.n_valid for r in result.models.values()] == [B, B]
        assert not np.isnan(result.replicates).any()
    counts = bs.resample_counts(bs.ResamplePlan(10, B, seed=5, strata=y))
    assert (counts[:, 3] == 1).all() and (counts.sum(axis=1) == 10).all()
    result = compare_metrics(["auroc", "auprc"], y, scores, n_resamples=B, seed=5, with_delong=False)
    for b in range(0, B, 10):
        idx = np.repeat(np.arange(10), counts[b])
        for m, name in enumerate(scores):
            yb, sb = y[idx], scores[name][idx]
            assert result["auroc"].replicates[m, b] == pytest.approx(skm.roc_auc_score(yb, sb), abs=1e-12)
            assert result["average_precision"].replicates[m, b] == pytest.approx(
                skm.average_precision_score(yb, sb), abs=1e-12)


def _graded_models(k, seed=0, n=120):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    return y, {f"m{i}": rng.normal((1.5 - 0.5 * i) * y, 1) for i in range(k)}


def test_one_model_makes_no_comparison():
    """A single model gets its interval and no pair: the family is empty, so there is no Bonferroni threshold."""
    y, scores = _graded_models(1)
    result = compare("auroc", y, scores, n_resamples=50, seed=1)
    assert result.pairs == [] and result.delong["pairs"] == []
    assert result.settings["n_comparisons"] == 0 and result.settings["bonferroni_threshold"] is None


@pytest.mark.parametrize("k", [2, 4])
def test_bonferroni_family_is_the_number_of_pairs(k):
    """Two models make one pair (no correction), four make six: p_adjusted = min(1, pairs x p) and the verdict is
    p < alpha / pairs, for the bootstrap and for DeLong's test alike."""
    y, scores = _graded_models(k)
    family = k * (k - 1) // 2
    result = compare("auroc", y, scores, n_resamples=400, seed=1)
    assert len(result.pairs) == family == result.settings["n_comparisons"]
    assert result.settings["bonferroni_threshold"] == pytest.approx(0.05 / family)
    for p in result.pairs:
        assert p.p_adjusted == pytest.approx(min(1.0, family * p.p_value), rel=1e-12)
        assert p.significant == (p.p_value < 0.05 / family)
    assert any(family * p.p_value < 1 for p in result.pairs)  # some pair where the family size shows
    for dl in result.delong["pairs"]:
        assert dl["p_adjusted"] == pytest.approx(min(1.0, family * dl["p_value"]), rel=1e-12)
        assert dl["significant"] == (dl["p_value"] < 0.05 / family)


@pytest.mark.parametrize("level, z", [(0.95, 1.959963984540054), (0.9, 1.6448536269514722)])
def test_delong_interval_is_auroc_plus_minus_the_normal_quantile_times_the_se(level, z):
    """The per-model interval is AUROC +- z_(1+level)/2 x sqrt(var), var from DeLong's structural components
    computed over all positive-negative pairs; the AUROC is scikit-learn's."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(11)
    y = np.r_[np.ones(12, int), np.zeros(18, int)]
    scores = {"a": np.round(rng.normal(0.6 * y, 1), 1), "b": rng.normal(0.3 * y, 1)}
    auc, cov = _delong_brute_force(y, np.stack(list(scores.values())))
    result = delong(y, scores, ci_level=level)
    boot = compare("auroc", y, scores, n_resamples=50, ci_level=level)
    for i, m in enumerate(scores):
        assert auc[i] == pytest.approx(roc_auc_score(y, scores[m]), abs=1e-12)
        half = z * np.sqrt(cov[i, i])
        expected = (auc[i] - half, auc[i] + half)
        assert 0 < expected[0] and expected[1] < 1  # not clipped
        assert result.ci(m) == pytest.approx(expected, abs=1e-12)
        reported = boot.delong["models"][m]
        assert (reported["ci_low"], reported["ci_high"]) == pytest.approx(expected, abs=1e-12)
        assert reported["auroc"] == pytest.approx(roc_auc_score(y, scores[m]), abs=1e-12)
        assert reported["se"] == pytest.approx(np.sqrt(cov[i, i]), abs=1e-12)


@pytest.mark.parametrize("level", [0.95, 0.9])
def test_delong_pair_is_the_z_test_on_the_brute_force_variance_of_the_difference(level):
    """DeLong's pairwise test: difference a - b, var = var_a + var_b - 2 cov_ab from the definition, z = diff/sd,
    two-sided normal p, and a normal interval for the difference (the quantile taken independently of scipy)."""
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(15, int), np.zeros(25, int)]
    scores = {"a": np.round(rng.normal(1.2 * y, 1), 1), "b": rng.normal(0.2 * y, 1), "c": rng.normal(0.6 * y, 1)}
    auc, cov = _delong_brute_force(y, np.stack(list(scores.values())))
    z_quantile = {0.95: 1.959963984540054, 0.9: 1.6448536269514722}[level]
    result = delong(y, scores, ci_level=level)
    pairs = result.pairs()
    assert list(pairs) == [("a", "b"), ("a", "c"), ("b", "c")]
    for (a, b), got in pairs.items():
        i, j = list(scores).index(a), list(scores).index(b)
        diff = auc[i] - auc[j]
        sd = np.sqrt(cov[i, i] + cov[j, j] - 2 * cov[i, j])
        z = diff / sd
        assert got["difference"] == pytest.approx(diff, abs=1e-12)
        assert got["z"] == pytest.approx(z, rel=1e-10)
        assert got["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-10)
        assert (got["ci_low"], got["ci_high"]) == pytest.approx((diff - z_quantile * sd, diff + z_quantile * sd),
                                                               abs=1e-12)
    assert pairs[("a", "b")]["p_value"] < 0.05 < pairs[("b", "c")]["p_value"]  # both branches of abs(z) matter


def test_delong_pair_of_identical_rankings_and_a_clipped_interval():
    """Two models ranking the cases alike have no variance of the difference: difference 0, p 1 and a zero-width
    interval; a near-perfect model's interval is clipped at 1 (and a near-useless one's at 0)."""
    y = np.r_[np.ones(6, int), np.zeros(6, int)]
    s = np.array([0.9, 0.8, 0.85, 0.7, 0.95, 0.3, 0.1, 0.2, 0.05, 0.15, 0.25, 0.4])
    result = delong(y, {"a": s, "a_scaled": 3 * s + 1, "inverted": -s})
    assert result.pair("a", "a_scaled") == {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "z": 0.0,
                                            "p_value": 1.0}
    low, high = result.ci("a")
    assert high == 1.0 and low < 1.0
    low, high = result.ci("inverted")
    assert low == 0.0 and high > 0.0
    # perfect against perfectly inverted: constant components, no variance, a certain difference of 1
    perfect = delong(y, {"perfect": y + 0.1 * s, "inverted": -y - 0.1 * s}).pair("perfect", "inverted")
    assert perfect == {"difference": 1.0, "ci_low": 1.0, "ci_high": 1.0, "z": 0.0, "p_value": 0.0}


def test_delong_defaults_to_a_95_percent_interval_and_checks_the_score_lengths():
    rng = np.random.default_rng(8)
    y = np.r_[np.ones(10, int), np.zeros(14, int)]
    scores = {"a": rng.normal(0.8 * y, 1), "b": rng.normal(0.2 * y, 1)}
    assert delong(y, scores).ci("a") == delong(y, scores, ci_level=0.95).ci("a")
    assert delong(y, scores).pair("a", "b") == delong(y, scores, ci_level=0.95).pair("a", "b")
    with pytest.raises(ValueError, match=r"^every score vector must have 24 entries, got 23$"):
        delong(y, {"a": scores["a"][:-1]})


def test_to_dict_is_what_results_json_records():
    """Comparison.to_dict: the metric's name, display name, definition and direction, every model's and pair's
    fields as computed, DeLong's block only when it was computed, warnings only when there are some; pair() names
    the pairs it has when asked for one it has not."""
    import dataclasses

    rng = np.random.default_rng(8)
    y = (rng.random(60) < 0.4).astype(int)
    scores = {"a": rng.normal(y, 1.0), "b": rng.normal(y, 2.0)}
    result = compare("auroc", y, scores, n_resamples=50, seed=1)
    info = M.resolve_metric("auroc")
    out = result.to_dict()
    assert out == {"name": info.name, "display": info.display, "definition": info.definition,
                   "higher_is_better": info.higher_is_better,
                   "models": {m: dataclasses.asdict(r) for m, r in result.models.items()},
                   "pairs": [dataclasses.asdict(p) for p in result.pairs], "delong": result.delong}
    assert out["higher_is_better"] is True and out["delong"]["pairs"][0]["model_a"] == "a"
    without = compare("auroc", y, scores, n_resamples=50, seed=1, with_delong=False).to_dict()
    assert "delong" not in without and "warnings" not in without
    small = compare("auroc", y[:12], {m: s[:12] for m, s in scores.items()}, n_resamples=50, seed=1).to_dict()
    assert small["warnings"] and all(isinstance(w, str) for w in small["warnings"])
    with pytest.raises(KeyError, match=r"no pair \('b', 'a'\) in \[\('a', 'b'\)\]"):
        result.pair("b", "a")


def test_settings_name_what_acted_for_each_kind_of_metric():
    """Each setting is recorded where it acted and None where it could not: the redraw count of an unstratified
    AUROC equals the number of one-class resamples, counted independently as the NaN replicates that the "drop"
    rule leaves; the mask threshold and empty-mask rule are those the Dice replicates were computed with."""
    y = np.zeros(8, int)
    y[2] = 1
    scores = {"a": np.linspace(0.0, 0.7, 8), "b": np.array([0.3, 0.1, 0.6, 0.5, 0.2, 0.7, 0.0, 0.4])}
    kw = dict(n_resamples=300, seed=3, stratify=False, with_delong=False)
    redrawn = compare("auroc", y, scores, **kw)
    dropped = compare("auroc", y, scores, degenerate="drop", **kw)
    one_class = int(np.isnan(dropped.replicates[0]).sum())
    assert one_class > 0 and np.isnan(dropped.replicates).sum() == 2 * one_class
    assert redrawn.settings["n_redrawn_resamples"] == one_class and dropped.settings["n_redrawn_resamples"] == 0
    assert redrawn.settings["degenerate_resamples"] == "redraw" and dropped.settings["degenerate_resamples"] == "drop"
    stratified = compare("auroc", y, scores, n_resamples=300, seed=3, stratify=True, with_delong=False)
    assert stratified.settings["stratified"] is True
    ranking_only = ("degenerate_resamples", "n_redrawn_resamples")
    mask_only = ("empty_mask_rule", "mask_threshold", "true_masks")
    for result in (stratified, compare("mse", np.arange(8.0), {"a": np.arange(8.0) + 1}, n_resamples=50)):
        assert [result.settings[k] for k in ranking_only + mask_only] == [None] * 5
        assert result.settings["ci_method"] == "percentile"

    rng = np.random.default_rng(1)
    true = rng.random((12, 6, 6)) < 0.3
    true[0] = False
    probs = {m: np.clip(true * w + rng.random((12, 6, 6)) * 0.5, 0, 1) for m, w in (("a", 0.6), ("b", 0.3))}
    for p in probs.values():
        p[0] = 0.0                                    # both masks empty on case 0: the rule decides its Dice
    dice = compare("dice", true, probs, n_resamples=100, seed=0, mask_threshold=0.4, empty_mask_rule="one")
    assert [dice.settings[k] for k in ranking_only + mask_only] == [None, None, "one", 0.4, "shared"]
    at_04 = {m: M.mask_statistics(p, true, 0.4) for m, p in probs.items()}
    np.testing.assert_array_equal(dice.replicates, compare("dice", None, at_04, n_resamples=100, seed=0,
                                                           empty_mask_rule="one").replicates)
    assert dice.models["a"].full_sample == pytest.approx(np.mean(M.dice(probs["a"], true, "one", 0.4)))


def test_bootstrap_mean_and_sd_are_those_of_the_valid_replicates():
    y, preds = _three_models(2, n=60)
    preds.pop("weak_copy")
    result = compare("auroc", y, preds, n_resamples=200, seed=4, stratify=False, degenerate="drop")
    for i, (name, r) in enumerate(result.models.items()):
        valid = result.replicates[i][~np.isnan(result.replicates[i])]
        assert (r.bootstrap_mean, r.bootstrap_sd, r.n_valid) == (
            pytest.approx(valid.mean(), rel=1e-12), pytest.approx(valid.std(ddof=1), rel=1e-12), valid.size)
        assert r.estimate == r.full_sample == pytest.approx(M.auroc(y, preds[name]), rel=1e-12)
    single = compare("mse", np.arange(6.0), {"a": np.arange(6.0) * 1.1}, n_resamples=1)
    assert single.models["a"].n_valid == 1 and math.isnan(single.models["a"].bootstrap_sd)
    assert single.models["a"].bootstrap_mean == single.replicates[0, 0]


def test_true_mask_areas_given_as_y_true_are_checked_against_the_statistics():
    stats = {"a": M.MaskStatistics(np.array([1, 2, 0]), np.array([2, 3, 0]), np.array([2, 2, 1]))}
    assert compare("dice", np.array([2, 2, 1]), stats, n_resamples=20).n_cases == 3
    with pytest.raises(ValueError, match=r"^y_true \(true mask areas\) does not match the true_area of the mask "
                                         r"statistics$"):
        compare("dice", np.array([2, 2, 2]), stats, n_resamples=20)
    with pytest.raises(ValueError, match="^no metric requested$"):
        compare_metrics([], np.array([0, 1]), {"a": np.array([0.1, 0.2])})


def test_small_set_warnings_at_their_thresholds():
    from jaxprobe.stats.compare import sample_warnings

    nine = np.r_[np.ones(9, int), np.zeros(30, int)]
    assert sample_warnings("ranking", nine, nine.size) == (
        "small test set: 9 positive case(s) (fewer than 10); the bootstrap intervals and p-values are unreliable",)
    both = np.r_[np.ones(3, int), np.zeros(2, int)]
    assert sample_warnings("ranking", both, 5) == (
        "small test set: 3 positive, 2 negative case(s) (fewer than 10); the bootstrap intervals and p-values are "
        "unreliable",)
    assert sample_warnings("ranking", np.r_[np.ones(10, int), np.zeros(10, int)], 20) == ()
    assert sample_warnings("regression", np.arange(19.0), 19) == (
        "small test set: 19 cases (fewer than 20); the bootstrap intervals and p-values are unreliable",)
    assert sample_warnings("regression", np.arange(20.0), 20) == ()
    assert sample_warnings("mask", None, 19)[0].startswith("small test set: 19 cases")


def test_p_value_and_interval_edges():
    from jaxprobe.stats.compare import percentile_interval

    d = np.array([0.1, np.nan, -0.2, 0.4, 0.3])
    assert paired_p_value(d, 0.2) == pytest.approx((1 + 2) / (4 + 1))   # |d - 0.2| >= 0.2: -0.2 and 0.4
    assert math.isnan(paired_p_value(d, float("nan"))) and math.isnan(paired_p_value(np.full(3, np.nan), 0.1))
    values = np.r_[np.arange(101.0), np.nan]
    assert percentile_interval(values, 0.9) == (pytest.approx(5.0), pytest.approx(95.0))
    assert all(math.isnan(v) for v in percentile_interval(np.full(4, np.nan), 0.95))


@pytest.mark.parametrize("option, value, message", [
    ("ci_level", 1.0, "ci_level must be in (0, 1), got 1.0"),
    ("ci_level", 0.0, "ci_level must be in (0, 1), got 0.0"),
    ("alpha", 1.0, "alpha must be in (0, 1), got 1.0"),
    ("alpha", 0.0, "alpha must be in (0, 1), got 0.0"),
    ("n_resamples", 0, "n_resamples must be positive, got 0"),
    ("point_estimate", "median", "point_estimate must be one of ('full_sample', 'bootstrap_mean'), got 'median'"),
    ("test", "welch", "test must be one of ('paired', 'unpaired'), got 'welch'"),
    ("n_comparisons", 0, "n_comparisons must be at least 1, got 0"),
])
def test_settings_out_of_range_are_refused_whole(option, value, message):
    y, preds = _three_models(n=40)
    preds.pop("weak_copy")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        compare("auroc", y, preds, **{"n_resamples": 10, option: value})
