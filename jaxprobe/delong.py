"""DeLong's test and confidence interval for AUROC (a cross-check of the bootstrap for AUROC only).

Structural components from midranks (Sun & Xu, 2014): for m positives and k negatives,
V10_i = (rank of positive i among all − its rank among positives) / k and
V01_j = 1 − (rank of negative j among all − its rank among negatives) / m, with midranks for ties, so the
AUROC is mean(V10) and ties count one half. Var(AUC_r − AUC_s) = (S10_rr + S10_ss − 2 S10_rs)/m +
(S01_rr + S01_ss − 2 S01_rs)/k with S10, S01 the sample covariances of the components across models.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Mapping

import numpy as np
from scipy import stats as sps

from jaxprobe.metrics import check_binary_labels


@dataclasses.dataclass
class DeLongResult:
    models: list[str]
    auroc: np.ndarray            # [models]
    covariance: np.ndarray       # [models, models], covariance of the AUROC estimates
    ci_level: float

    def ci(self, model: str) -> tuple[float, float]:
        """Normal-approximation interval, clipped to [0, 1]."""
        i = self.models.index(model)
        half = sps.norm.ppf(0.5 + self.ci_level / 2) * np.sqrt(self.covariance[i, i])
        return max(0.0, float(self.auroc[i] - half)), min(1.0, float(self.auroc[i] + half))

    def pair(self, a: str, b: str) -> dict:
        """Difference a − b, its normal CI and the two-sided p-value of DeLong's z test."""
        i, j = self.models.index(a), self.models.index(b)
        diff = float(self.auroc[i] - self.auroc[j])
        var = float(self.covariance[i, i] + self.covariance[j, j] - 2 * self.covariance[i, j])
        if var <= 0:
            # Identical rankings: no difference and no variance, nothing to reject.
            return {"difference": diff, "ci_low": diff, "ci_high": diff, "z": 0.0, "p_value": 1.0 if diff == 0 else 0.0}
        z = diff / np.sqrt(var)
        half = sps.norm.ppf(0.5 + self.ci_level / 2) * np.sqrt(var)
        return {"difference": diff, "ci_low": float(diff - half), "ci_high": float(diff + half), "z": float(z),
                "p_value": float(2 * sps.norm.sf(abs(z)))}

    def pairs(self):
        return {(a, b): self.pair(a, b) for a, b in itertools.combinations(self.models, 2)}


def delong(y_true, scores: Mapping[str, np.ndarray], ci_level: float = 0.95) -> DeLongResult:
    y = check_binary_labels(y_true).astype(bool)
    models = list(scores)
    s = np.stack([np.asarray(scores[m], np.float64) for m in models])
    if s.shape[1] != y.size:
        raise ValueError(f"every score vector must have {y.size} entries, got {s.shape[1]}")
    positives, negatives = s[:, y], s[:, ~y]
    m, k = positives.shape[1], negatives.shape[1]
    rank_all = sps.rankdata(s, axis=1)
    v10 = (rank_all[:, y] - sps.rankdata(positives, axis=1)) / k
    v01 = 1.0 - (rank_all[:, ~y] - sps.rankdata(negatives, axis=1)) / m
    auc = v10.mean(axis=1)
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / k
    return DeLongResult(models, auc, covariance, ci_level)
