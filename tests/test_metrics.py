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
