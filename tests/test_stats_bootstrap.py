"""The vectorised bootstrap against scikit-learn on the very resamples it drew, and the count matrix itself."""
import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from jaxprobe import bootstrap as bs
from jaxprobe import metrics as M


def _ranking_case(seed, n=240, prevalence=0.25):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    tied = np.round(rng.normal(y * 0.9, 1.0) * 2) / 2          # heavy ties
    smooth = rng.normal(y * 0.5, 1.0)
    return y, {"tied": tied, "smooth": smooth}


def _indices(counts_row):
    return np.repeat(np.arange(counts_row.size), counts_row)


@pytest.mark.parametrize("stratified", [True, False])
def test_ranking_replicates_equal_sklearn_on_each_resample(stratified):
    y, preds = _ranking_case(0)
    plan = bs.ResamplePlan(y.size, 40, seed=3, strata=y if stratified else None)
    infos = [M.resolve_metric(m) for m in ("auroc", "average_precision", "pr_auc_trapezoid")]
    # A tiny chunk budget forces several chunks and a padded last chunk.
    reps = bs.bootstrap_replicates(infos, y, preds, plan, max_chunk_elements=7 * y.size)
    assert reps.chunk_size == 7
    counts = bs.resample_counts(plan, attempts=reps.attempts)
    for b in range(plan.n_resamples):
        idx = _indices(counts[b])
        for m, name in enumerate(reps.models):
            yb, sb = y[idx], preds[name][idx]
            precision, recall, _ = skm.precision_recall_curve(yb, sb)
            assert reps.values["auroc"][m, b] == pytest.approx(skm.roc_auc_score(yb, sb), abs=1e-9)
            assert reps.values["average_precision"][m, b] == pytest.approx(skm.average_precision_score(yb, sb), abs=1e-9)
            assert reps.values["pr_auc_trapezoid"][m, b] == pytest.approx(skm.auc(recall, precision), abs=1e-9)


def _mask_stats(seed, n=60):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 50, n)
    true[:5] = 0
    pred = rng.integers(0, 50, n)
    pred[:3] = 0                      # cases 0-2: both empty
    inter = np.minimum(true, pred) // rng.integers(1, 3, n)
    return M.MaskStatistics(inter, pred, true)


def _sklearn_per_case(s, score, rule):
    """Per-case Dice/IoU from scikit-learn on pixel vectors rebuilt from the counts (NaN when excluded)."""
    values = []
    for inter, p, t in zip(s.intersection, s.pred_area, s.true_area):
        size = p + t - inter + 1
        true = np.zeros(size, bool); pred = np.zeros(size, bool)
        true[:t] = True; pred[t - inter:t - inter + p] = True
        if p == 0 and t == 0:
            values.append({"zero": 0.0, "one": 1.0, "exclude": np.nan}[rule])
        else:
            values.append(score(true, pred))
    return np.array(values)


@pytest.mark.parametrize("rule", ["zero", "one", "exclude"])
def test_mask_replicates_equal_sklearn_on_each_resample(rule):
    stats = {"a": _mask_stats(1), "b": _mask_stats(2)}
    plan = bs.ResamplePlan(60, 15, seed=0)
    given = {"a": stats["a"], "b": stats["b"].as_array()}   # MaskStatistics or their [n, 3] array, alike
    reps = bs.bootstrap_replicates([M.METRICS["dice"], M.METRICS["iou"]], None, given, plan,
                                   empty_mask_rule=rule, max_chunk_elements=4 * 60)
    counts = bs.resample_counts(plan)
    per_case = {(metric, name): _sklearn_per_case(stats[name], score, rule)
                for metric, score in (("dice", skm.f1_score), ("iou", skm.jaccard_score)) for name in stats}
    for b in range(15):
        idx = _indices(counts[b])
        for m, name in enumerate(reps.models):
            for metric in ("dice", "iou"):
                expected = np.nanmean(per_case[(metric, name)][idx])
                assert reps.values[metric][m, b] == pytest.approx(expected, abs=1e-9)


def test_regression_replicates_equal_sklearn_on_each_resample():
    rng = np.random.default_rng(4)
    n = 500
    y = rng.normal(0.5, 0.05, n)          # CTR-like targets: small variance around a large mean
    preds = {"good": y + rng.normal(0, 0.02, n), "poor": y.mean() + rng.normal(0, 0.05, n)}
    plan = bs.ResamplePlan(n, 20, seed=9)
    reps = bs.bootstrap_replicates([M.METRICS["r2"], M.METRICS["mse"]], y, preds, plan, max_chunk_elements=3 * n)
    counts = bs.resample_counts(plan)
    for b in range(20):
        idx = _indices(counts[b])
        for m, name in enumerate(reps.models):
            assert reps.values["r2"][m, b] == pytest.approx(skm.r2_score(y[idx], preds[name][idx]), abs=1e-9)
            assert reps.values["mse"][m, b] == pytest.approx(skm.mean_squared_error(y[idx], preds[name][idx]), abs=1e-12)


def test_count_matrix_rows_sum_to_n_and_strata_keep_their_sizes():
    y = np.r_[np.ones(7, int), np.zeros(30, int)]
    counts = bs.resample_counts(bs.ResamplePlan(37, 500, seed=1, strata=y))
    assert np.all(counts.sum(1) == 37)
    assert np.all(counts[:, y == 1].sum(1) == 7)
    plain = bs.resample_counts(bs.ResamplePlan(37, 500, seed=1))
    assert np.all(plain.sum(1) == 37) and np.ptp(plain[:, y == 1].sum(1)) > 0


def test_resamples_do_not_depend_on_chunking_and_follow_the_seed():
    y, preds = _ranking_case(5, n=90)
    info = [M.METRICS["auroc"]]
    plan = bs.ResamplePlan(90, 64, seed=11, strata=y)
    a = bs.bootstrap_replicates(info, y, preds, plan, max_chunk_elements=90 * 5).values["auroc"]
    b = bs.bootstrap_replicates(info, y, preds, plan, max_chunk_elements=90 * 64).values["auroc"]
    np.testing.assert_array_equal(a, b)
    other = bs.bootstrap_replicates(info, y, preds, bs.ResamplePlan(90, 64, seed=12, strata=y)).values["auroc"]
    assert not np.array_equal(a, other)


def test_draws_are_uniform_over_cases():
    n, B = 50, 4000
    totals = bs.resample_counts(bs.ResamplePlan(n, B, seed=0)).sum(0)
    assert sps.chisquare(totals).pvalue > 1e-3
    # Counts of one case over resamples follow Binomial(n, 1/n).
    counts = bs.resample_counts(bs.ResamplePlan(n, B, seed=1))[:, 0]
    assert counts.mean() == pytest.approx(1.0, abs=0.06)
    assert counts.var() == pytest.approx(1 - 1 / n, abs=0.1)


def test_high_word_of_product_is_exact():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 2000, dtype=np.uint64)
    sizes = np.r_[rng.integers(1, 2**31, 1000, dtype=np.uint64), rng.integers(1, 70_000, 1000, dtype=np.uint64)]
    got = np.asarray(bs._high_word_of_product(np.uint32(bits), np.uint32(sizes)))
    expected = [(int(b) * int(s)) >> 32 for b, s in zip(bits, sizes)]
    np.testing.assert_array_equal(got.astype(np.uint64), np.array(expected, np.uint64))


def test_one_class_resamples_are_dropped_or_redrawn_as_configured():
    y = np.r_[1, np.zeros(9, int)]                  # one positive in ten: ~35% of plain resamples miss it
    preds = {"a": np.linspace(0, 1, 10), "b": np.linspace(1, 0, 10)}
    info = [M.METRICS["auroc"], M.METRICS["average_precision"]]
    plain = bs.ResamplePlan(10, 400, seed=0)
    dropped = bs.bootstrap_replicates(info, y, preds, plain, degenerate="drop")
    missing = np.isnan(dropped.values["auroc"][0])
    counts = bs.resample_counts(plain)
    np.testing.assert_array_equal(missing, counts[:, 0] == 0)
    assert 0.2 < missing.mean() < 0.5
    np.testing.assert_array_equal(np.isnan(dropped.values["average_precision"][1]), missing)

    redrawn = bs.bootstrap_replicates(info, y, preds, plain, degenerate="redraw")
    assert not np.isnan(redrawn.values["auroc"]).any()
    assert redrawn.n_redrawn == missing.sum()
    final = bs.resample_counts(plain, attempts=redrawn.attempts)
    assert np.all(final[:, 0] > 0)
    np.testing.assert_array_equal(final[~missing], counts[~missing])   # valid rows are kept as drawn

    stratified = bs.bootstrap_replicates(info, y, preds, bs.ResamplePlan(10, 400, seed=0, strata=y))
    assert not np.isnan(stratified.values["auroc"]).any() and stratified.n_redrawn == 0


def test_splitmix64_matches_the_reference_generator():
    import jax
    import jax.numpy as jnp

    # First outputs of SplitMix64 from state 0 (the reference C code by Vigna; widely used test vector).
    expected = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    with jax.enable_x64(True):
        got = bs.splitmix64_high_words(jnp.uint64(0), 3)
    assert [int(g) for g in got] == [e >> 32 for e in expected]


def test_large_test_sets_use_separate_prefix_sums():
    n = bs.PACKED_PREFIX_LIMIT + 500
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.5).astype(int)
    preds = {"a": np.round(rng.normal(y, 1), 1)}
    plan = bs.ResamplePlan(n, 3, seed=0, strata=y)
    reps = bs.bootstrap_replicates([M.METRICS["auroc"], M.METRICS["average_precision"]], y, preds, plan)
    counts = bs.resample_counts(plan)
    for b in range(3):
        idx = _indices(counts[b])
        assert reps.values["auroc"][0, b] == pytest.approx(skm.roc_auc_score(y[idx], preds["a"][idx]), abs=1e-9)
        assert reps.values["average_precision"][0, b] == pytest.approx(
            skm.average_precision_score(y[idx], preds["a"][idx]), abs=1e-9)


def test_r2_is_undefined_exactly_on_resamples_with_constant_targets():
    y = np.array([0.4, 0.4, 0.4, 0.6])
    plan = bs.ResamplePlan(4, 300, seed=0)
    reps = bs.bootstrap_replicates([M.METRICS["r2"]], y, {"a": np.array([0.41, 0.39, 0.4, 0.58])}, plan)
    counts = bs.resample_counts(plan)
    constant = (counts[:, 3] == 0) | (counts[:, 3] == 4)
    assert constant.any()
    np.testing.assert_array_equal(np.isnan(reps.values["r2"][0]), constant)


def test_a_plan_without_cases_or_resamples_or_with_mismatched_strata_is_refused_whole():
    for n, b in ((0, 10), (10, 0), (0, 0)):
        with pytest.raises(ValueError, match=rf"^need at least one case and one resample, got n={n}, B={b}$"):
            bs.ResamplePlan(n, b, seed=0)
    with pytest.raises(ValueError, match=r"^too many cases for int32 indices: 2147483648$"):
        bs.ResamplePlan(2**31, 10, seed=0)
    with pytest.raises(ValueError, match=r"^strata must have one label per case \(5\), got shape \(4,\)$"):
        bs.ResamplePlan(5, 10, seed=0, strata=np.zeros(4))
