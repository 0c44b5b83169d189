"""Point metrics against scikit-learn on random data with many ties."""
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from jaxprobe import metrics


def _ranking_data(seed, n=300, prevalence=0.3, levels=12):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    # Few distinct score levels so that tie groups mix positives and negatives.
    score = np.round(rng.normal(y * 0.8, 1.0) * levels / 4) / levels
    return y, score


@pytest.mark.parametrize("seed", range(5))
def test_ranking_metrics_match_sklearn_with_ties(seed):
    y, s = _ranking_data(seed)
    assert np.unique(s).size < y.size // 3
    assert metrics.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert metrics.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    precision, recall, _ = skm.precision_recall_curve(y, s)
    assert metrics.pr_auc_trapezoid(y, s) == pytest.approx(skm.auc(recall, precision), abs=1e-12)


def test_ap_and_trapezoid_are_different_quantities():
    y, s = _ranking_data(7)
    assert abs(metrics.average_precision(y, s) - metrics.pr_auc_trapezoid(y, s)) > 1e-3


@pytest.mark.parametrize("seed", range(3))
def test_regression_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(0.5, 0.05, 500)
    p = np.round(y + rng.normal(0, 0.03, 500), 2)
    assert metrics.mse(y, p) == pytest.approx(skm.mean_squared_error(y, p), abs=1e-12)
    assert metrics.r2(y, p) == pytest.approx(skm.r2_score(y, p), abs=1e-12)


def _masks(seed, n=40, size=16):
    rng = np.random.default_rng(seed)
    true = rng.random((n, size, size)) < rng.uniform(0, 0.3, (n, 1, 1))
    prob = np.clip(true * 0.6 + rng.random((n, size, size)) * 0.5, 0, 1)
    true[:4] = False          # empty ground truth
    prob[:2] = 0.1            # ...and both empty for the first two cases
    prob[5] = 0.0             # empty prediction, non-empty truth
    return prob, true


def test_dice_and_iou_match_sklearn_per_image_with_zero_rule():
    prob, true = _masks(0)
    binary = prob > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_dice = [skm.f1_score(t.ravel(), p.ravel()) for p, t in zip(binary, true)]
        expected_iou = [skm.jaccard_score(t.ravel(), p.ravel()) for p, t in zip(binary, true)]
    np.testing.assert_allclose(metrics.dice(prob, true), expected_dice, atol=1e-12)
    np.testing.assert_allclose(metrics.iou(prob, true, "zero"), expected_iou, atol=1e-12)
    # Boolean predictions are used as they are.
    np.testing.assert_allclose(metrics.dice(binary, true), expected_dice, atol=1e-12)


def test_empty_mask_rules():
    prob, true = _masks(1)
    zero, one, excluded = (metrics.dice(prob, true, rule) for rule in ("zero", "one", "exclude"))
    assert zero[0] == 0 and one[0] == 1 and np.isnan(excluded[0])
    assert np.array_equal(zero[2:], one[2:]) and np.array_equal(zero[2:], excluded[2:])
    assert metrics.mean_over_cases(excluded) == pytest.approx(np.mean(zero[2:]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [skm.f1_score(t.ravel(), p.ravel(), zero_division=1.0) for p, t in zip(prob > 0.5, true)]
    np.testing.assert_allclose(one, expected, atol=1e-12)
    with pytest.raises(ValueError, match="empty_mask_rule"):
        metrics.dice(prob, true, "nan")


def test_iou_rules_and_the_defaults_of_every_entry_point():
    """IoU follows the same empty-mask rule as Dice (scikit-learn's Jaccard with zero_division as oracle); every
    entry point defaults to rule "zero" and binarise to "foreground above 0.5"."""
    prob, true = _masks(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rule, zero_division in (("zero", 0.0), ("one", 1.0)):
            expected = [skm.jaccard_score(t.ravel(), p.ravel(), zero_division=zero_division)
                        for p, t in zip(prob > 0.5, true)]
            np.testing.assert_allclose(metrics.iou(prob, true, rule), expected, atol=1e-12)
    excluded = metrics.iou(prob, true, "exclude")
    both_empty = ~(prob > 0.5).any(axis=(1, 2)) & ~true.any(axis=(1, 2))
    assert both_empty[:2].all() and not both_empty.all()
    np.testing.assert_array_equal(np.isnan(excluded), both_empty)
    stats = metrics.mask_statistics(prob, true)
    np.testing.assert_array_equal(metrics.dice_from_statistics(stats), metrics.dice(prob, true, "zero"))
    np.testing.assert_array_equal(metrics.iou_from_statistics(stats), metrics.iou(prob, true, "zero"))
    np.testing.assert_array_equal(metrics.iou(prob, true), metrics.iou(prob, true, "zero"))
    assert metrics.binarise(np.array([0.4, 0.5, 0.6, 1.2])).tolist() == [False, False, True, True]


def test_mask_statistics_reject_inconsistent_counts():
    with pytest.raises(ValueError, match="intersection exceeds"):
        metrics.MaskStatistics(np.array([5]), np.array([3]), np.array([9]))
    with pytest.raises(ValueError, match="shape"):
        metrics.mask_statistics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool))


def test_bad_labels_are_named():
    with pytest.raises(ValueError, match="only one class"):
        metrics.auroc(np.ones(5), np.arange(5.0))
    with pytest.raises(ValueError, match="binary labels"):
        metrics.auroc(np.array([0, 1, 2]), np.arange(3.0))
    with pytest.raises(ValueError, match="shape"):
        metrics.auroc(np.array([0, 1, 1]), np.arange(4.0))


def test_auprc_resolves_to_the_chosen_definition():
    assert metrics.resolve_metric("auprc").name == "average_precision"
    assert metrics.resolve_metric("AUPRC", pr_auc="trapezoid").name == "pr_auc_trapezoid"
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.resolve_metric("f2")


def test_probability_masks_are_foreground_strictly_above_the_threshold_on_both_sides():
    """pred and true are both binarised at the threshold given (default 0.5), foreground where value > threshold;
    the Dice and IoU agree with scikit-learn's F1 and Jaccard on the binarised pixels."""
    pred = np.array([[[0.5, 0.6], [0.2, 0.9]], [[0.7, 0.7], [0.0, 0.5]]])
    true = np.array([[[0.6, 0.5], [0.0, 1.0]], [[0.8, 0.3], [0.2, 0.9]]])
    for threshold, given in ((0.5, {}), (0.65, {"threshold": 0.65})):  # the default, then one given
        pb, tb = pred > threshold, true > threshold
        stats = metrics.mask_statistics(pred, true, **given)
        np.testing.assert_array_equal(stats.as_array(), np.stack(
            [(pb & tb).sum((1, 2)), pb.sum((1, 2)), tb.sum((1, 2))], 1))
        dice, iou = metrics.dice(pred, true, **given), metrics.iou(pred, true, **given)
        for k in range(2):
            assert dice[k] == pytest.approx(skm.f1_score(tb[k].ravel(), pb[k].ravel(), zero_division=0.0))
            assert iou[k] == pytest.approx(skm.jaccard_score(tb[k].ravel(), pb[k].ravel(), zero_division=0.0))
    boolean = np.array([[[True, False]]])
    np.testing.assert_array_equal(metrics.binarise(boolean, threshold=2.0), boolean)  # boolean masks stay as they are
    assert metrics.iou(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))).tolist() == [0.0]  # default empty-mask rule: zero


def test_mask_shapes_statistics_arrays_and_constant_targets_are_checked():
    flat = metrics.mask_statistics(np.array([[0.9, 0.1, 0.8]]), np.array([[1, 0, 0]]))  # [n, pixels] is a batch
    np.testing.assert_array_equal(flat.as_array(), [[1, 2, 1]])
    with pytest.raises(ValueError, match=r"^masks must be batched as \[n, \.\.\.\], got shape \(3,\)$"):
        metrics.mask_statistics(np.array([0.9, 0.1, 0.8]), np.array([1, 0, 0]))
    stats = metrics.MaskStatistics.from_array([[1, 2, 3], [0, 0, 4]])
    assert len(stats) == 2 and stats.as_array().tolist() == [[1, 2, 3], [0, 0, 4]]
    for bad in ([1, 2, 3], [[1, 2]]):
        with pytest.raises(ValueError, match=r"^mask statistics must have shape \[n, 3\]"):
            metrics.MaskStatistics.from_array(bad)
    with pytest.raises(ValueError, match="^R² is undefined: y_true is constant$"):
        metrics.r2([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert metrics.r2([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]) == 1.0  # a total sum of squares of exactly 1 is not "constant"
    assert np.isnan(metrics.mean_over_cases(np.array([np.nan, np.nan])))


def test_lowest_scored_case_positive_counts_in_roc_and_pr():
    """The last threshold group holds a positive: recall and TPR reach 1 only there (scikit-learn as oracle)."""
    y = np.array([1, 0, 0, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.5, 0.4, 0.3, 0.1])
    assert metrics.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-15)
    assert metrics.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-15)
    precision, recall, _ = skm.precision_recall_curve(y, s)
    assert metrics.pr_auc_trapezoid(y, s) == pytest.approx(skm.auc(recall, precision), abs=1e-15)


def test_point_estimate_takes_every_metric_by_name_and_mask_statistics_as_arrays():
    rng = np.random.default_rng(3)
    y = rng.normal(size=40)
    p = y + rng.normal(0, 0.5, 40)
    assert metrics.point_estimate("r2", y, p) == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    assert metrics.point_estimate("R2", y, p) == metrics.point_estimate("r2", y, p)
    stats = metrics.MaskStatistics(np.array([0, 3, 1, 0]), np.array([0, 4, 2, 2]), np.array([0, 5, 1, 0]))
    for rule, empty in (("zero", 0.0), ("one", 1.0)):
        for name, per_case in (("dice", [2 * 3 / 9, 2 / 3, 0.0]), ("iou", [3 / 6, 1 / 2, 0.0])):
            expected = np.mean([empty] + per_case)
            assert metrics.point_estimate(name, None, stats, empty_mask_rule=rule) == pytest.approx(expected, rel=1e-12)
            assert metrics.point_estimate(name, None, stats.as_array(), empty_mask_rule=rule) == pytest.approx(expected)
    assert metrics.point_estimate("dice", None, stats, empty_mask_rule="exclude") == pytest.approx(np.mean([2 / 3, 2 / 3, 0]))
    # without a rule, an empty prediction of an empty mask scores 0 ("zero")
    assert metrics.point_estimate("dice", None, stats) == pytest.approx(np.mean([0.0, 2 * 3 / 9, 2 / 3, 0.0]))


def test_refusals_name_what_was_wrong():
    def refused(pattern):
        return pytest.raises(ValueError, match=f"^{pattern}$")

    with refused(r"y_true must be one-dimensional, got shape \(2, 2\)"):
        metrics.auroc(np.zeros((2, 2)), np.zeros(4))
    with refused(r"y_true must hold binary labels 0/1 \(or booleans\), found values \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]"):
        metrics.auroc(np.arange(12), np.zeros(12))
    with refused(r"y_true holds only one class \(\[1\]\); AUROC and AUPRC need positives and negatives"):
        metrics.auroc(np.ones(3, int), np.zeros(3))
    with refused(r"score holds 2 non-finite values"):
        metrics.auroc(np.array([0, 1, 0, 1, 1]), np.array([0.1, np.nan, np.inf, 0.2, 0.3]))  # 2 of 5, not 3
    with refused(r"y_true and y_pred must be one-dimensional and of equal length, got \(3,\) and \(4,\)"):
        metrics.mse(np.zeros(3), np.zeros(4))
    with refused(r"y_true and y_pred must be one-dimensional and of equal length, got \(2, 2\) and \(2, 2\)"):
        metrics.mse(np.zeros((2, 2)), np.zeros((2, 2)))
    for y, p in ((np.array([1.0, np.nan]), np.zeros(2)), (np.zeros(2), np.array([1.0, np.inf]))):
        with refused("y_true and y_pred must be finite"):
            metrics.r2(y, p)
    with refused(r"unknown metric 'f1'; expected one of \['auroc', 'average_precision', 'dice', 'iou', 'mse', "
                 r"'pr_auc_trapezoid', 'r2', 'auprc'\]"):
        metrics.resolve_metric("f1")
    with refused(r"pr_auc must be one of \('average_precision', 'trapezoid'\), got 'area'"):
        metrics.resolve_metric("auprc", pr_auc="area")
    ok = np.array([1, 2])
    with refused(r"intersection, pred_area and true_area must be 1-D of equal length, got .*"):
        metrics.MaskStatistics(ok, ok, np.array([1, 2, 3]))
    with refused(r"intersection, pred_area and true_area must be 1-D of equal length, got \{\(1, 2\)\}"):
        metrics.MaskStatistics(ok[None], ok[None], ok[None])
    for i, name in enumerate(("intersection", "pred_area", "true_area")):
        for bad in (np.array([1, -2]), np.array([1, 1.5]), np.array([1, np.nan])):
            arrays = [ok, ok * 2, ok * 2]
            arrays[i] = bad
            with refused(f"{name} must hold non-negative whole pixel counts"):
                metrics.MaskStatistics(*arrays)
