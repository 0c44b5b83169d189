"""Vectorised bootstrap: one resample-count matrix per task, every metric for every resample at once.

A bootstrap resample of n test cases is fully described by how often each case was drawn, so the B
resamples form a count matrix W [B, n] (rows sum to n). Everything is computed from W in chunks of rows:

- Ranking metrics (AUROC, average precision, trapezoidal PR area): resampling only repeats cases, so the
  order of the scores never changes. Each model's scores are sorted once (with their tie groups); per
  resample, cumulative sums of the re-ordered counts give positives and negatives below every tie group,
  and with them the Mann-Whitney AUROC (ties count one half) and the precision/recall at every threshold.
- Per-case metrics (mean Dice, IoU, MSE, R²) are linear in W: one matrix product with per-case statistics.

Resampling is reproducible and independent of the chunk size: row b of W is drawn from the key
``fold_in(jax.random.key(seed), b)`` (folded once more with the attempt number when a one-class row is
redrawn); the row key's 64 bits seed a SplitMix64 stream whose n outputs pick the n cases, each output's
high 32 bits mapped to a case as the high word of bits × stratum size (Lemire's multiply-shift; each
index's probability is off by at most size / 2**32 relative, about 1e-6 at n = 6000). SplitMix64 is a
counter-based generator that passes BigCrush; Threefry bits for all B × n draws took 0.8 s at n = 6000,
B = 10,000 on 2 cores against 0.17 s for SplitMix64, more than the whole rest of that bootstrap.
Stratified resampling draws each class's cases from that class only, so every row keeps the test set's
prevalence and AUROC/AUPRC are always defined.

Counts and cumulative sums are int32 (exact); ratios and sums of ratios are float64 (traced under
``jax.enable_x64`` so callers' global JAX settings are untouched).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxprobe import metrics as M

DEGENERATE_RULES = ("redraw", "drop")
# Small chunks keep each chunk's counts (1 MiB of int32) in cache; measured faster than larger ones on 2 cores.
DEFAULT_MAX_CHUNK_ELEMENTS = 2**18
MAX_REDRAW_ATTEMPTS = 1000


# ---------------------------------------------------------------------------------------------
# Drawing the count matrix


@dataclasses.dataclass(frozen=True)
class ResamplePlan:
    """How W is drawn: B rows of n cases from ``jax.random.key(seed)``, optionally within strata."""

    n_cases: int
    n_resamples: int
    seed: int
    strata: np.ndarray | None = None   # per-case stratum label, or None for plain resampling

    def __post_init__(self):
        if self.n_cases < 1 or self.n_resamples < 1:
            raise ValueError(f"need at least one case and one resample, got n={self.n_cases}, B={self.n_resamples}")
        if self.n_cases >= 2**31:
            raise ValueError(f"too many cases for int32 indices: {self.n_cases}")
        if self.strata is not None and np.shape(self.strata) != (self.n_cases,):
            raise ValueError(f"strata must have one label per case ({self.n_cases}), got shape {np.shape(self.strata)}")

    def sampling_arrays(self):
        """Per draw position: which cases it may pick (a slice of ``cases_by_stratum``) and how many there are."""
        if self.strata is None:
            return (np.arange(self.n_cases, dtype=np.int32), np.zeros(self.n_cases, np.int32),
                    np.full(self.n_cases, self.n_cases, np.uint32))
        labels = np.asarray(self.strata)
        cases_by_stratum = np.argsort(labels, kind="stable").astype(np.int32)
        _, starts, sizes = np.unique(labels[cases_by_stratum], return_index=True, return_counts=True)
        offset = np.repeat(starts, sizes).astype(np.int32)
        size = np.repeat(sizes, sizes).astype(np.uint32)
        return cases_by_stratum, offset, size


def _high_word_of_product(bits, size):
    """floor(bits * size / 2**32) for uint32 operands, in 16-bit limbs so no 64-bit integers are needed."""
    mask = jnp.uint32(0xFFFF)
    hi, lo = bits >> 16, bits & mask
    size_hi, size_lo = size >> 16, size & mask
    u = hi * size_lo + ((lo * size_lo) >> 16)
    v = lo * size_hi
    return hi * size_hi + (u >> 16) + (v >> 16) + (((u & mask) + (v & mask)) >> 16)


SPLITMIX64_GAMMA = 0x9E3779B97F4A7C15


def splitmix64_high_words(seed, n: int):
    """High 32 bits of the first n outputs of SplitMix64 started at ``seed`` (uint64; needs x64 enabled).

    SplitMix64 (Steele, Lea & Flood 2014) is counter-based: output i mixes seed + (i + 1) * gamma, so a
    row's n draws cost a few 64-bit multiplies each instead of a Threefry block (about 5x faster on CPU).
    """
    z = seed + jnp.arange(1, n + 1, dtype=jnp.uint64) * jnp.uint64(SPLITMIX64_GAMMA)
    z = (z ^ (z >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> 27)) * jnp.uint64(0x94D049BB133111EB)
    z = z ^ (z >> 31)
    return (z >> 32).astype(jnp.uint32)


def _row_indices(row_key, cases_by_stratum, offset, size):
    # The row's Threefry key (recorded seed, folded with the row number) seeds the row's SplitMix64 stream.
    words = jax.random.key_data(row_key).astype(jnp.uint64)
    bits = splitmix64_high_words((words[0] << 32) | words[1], cases_by_stratum.shape[0])
    return cases_by_stratum[offset + _high_word_of_product(bits, size).astype(jnp.int32)]


@jax.jit
def _draw_indices(key, row_ids, cases_by_stratum, offset, size):
    """Drawn case indices [rows, n] int32 for the given resample rows (first attempt)."""
    return jax.vmap(lambda row: _row_indices(jax.random.fold_in(key, row), cases_by_stratum, offset, size))(row_ids)


@jax.jit
def _redraw_indices(key, row_ids, attempts, cases_by_stratum, offset, size):
    """Indices of the given rows at later attempts (attempt >= 1), used to replace one-class rows."""
    return jax.vmap(lambda row, attempt: _row_indices(jax.random.fold_in(jax.random.fold_in(key, row), attempt),
                                                      cases_by_stratum, offset, size))(row_ids, attempts)


def _counts_from_indices(indices, n):
    rows = jnp.arange(indices.shape[0])[:, None]
    return jnp.zeros((indices.shape[0], n), jnp.int32).at[rows, indices].add(1)


_counts_jit = jax.jit(_counts_from_indices, static_argnums=1)


def resample_counts(plan: ResamplePlan, rows: Sequence[int] | None = None, attempts: Sequence[int] | None = None
                    ) -> np.ndarray:
    """Rows of the count matrix W (all B rows if ``rows`` is None) at the given redraw attempts (default 0)."""
    with jax.enable_x64(True):   # the same compiled draws as bootstrap_replicates uses
        row_ids = jnp.asarray(np.arange(plan.n_resamples) if rows is None else rows, jnp.int32)
        key, sampling = jax.random.key(plan.seed), plan.sampling_arrays()
        indices = _draw_indices(key, row_ids, *sampling)
        if attempts is not None and np.any(attempts):
            fresh = _redraw_indices(key, row_ids, jnp.maximum(jnp.asarray(attempts, jnp.int32), 1), *sampling)
            indices = jnp.where((jnp.asarray(attempts) > 0)[:, None], fresh, indices)
        return np.asarray(_counts_jit(indices, plan.n_cases))


# ---------------------------------------------------------------------------------------------
# Per-chunk metric kernels


# Below this many cases, positives and negatives per prefix both fit in 16 bits of one int32, so one
# cumulative sum of (negatives + positives << 16) serves both (and 2 n² fits int32 for the AUROC sum).
PACKED_PREFIX_LIMIT = 32768


def _prefix_sums(sorted_counts, y_sorted):
    """Functions giving the positives / negatives drawn strictly below given sorted positions."""
    n = sorted_counts.shape[1]
    if n < PACKED_PREFIX_LIMIT:
        packed = jnp.cumsum(sorted_counts * jnp.where(y_sorted == 1, 1 << 16, 1), axis=1)

        def below(start):   # -> (positives, negatives) at sorted positions < start, int32
            v = jnp.where(start > 0, jnp.take(packed, start - 1, axis=1, mode="clip"), 0)
            return v >> 16, v & 0xFFFF
    else:
        pos_cum = jnp.cumsum(sorted_counts * y_sorted, axis=1)
        neg_cum = jnp.cumsum(sorted_counts * (1 - y_sorted), axis=1)

        def below(start):
            take = lambda cum: jnp.where(start > 0, jnp.take(cum, start - 1, axis=1, mode="clip"), 0)
            return take(pos_cum), take(neg_cum)
    return below


def _ranking_one_model(counts, w_pos, n_pos, n_neg, model, which):
    """AUROC / AP / trapezoidal PR area of one model for each row of ``counts`` [rows, n].

    ``model`` holds the model's ascending score order, the labels in that order, and for each positive
    case (columns of ``w_pos``) and each sorted position the first and one-past-last sorted position of
    its tie group.
    """
    order, y_sorted, pos_group_start, pos_group_stop, group_start = model
    below = _prefix_sums(jnp.take(counts, order, axis=1), y_sorted)
    pos_before, neg_before = below(pos_group_start)
    out = {}
    if "auroc" in which:
        # A positive beats every negative below its tie group and half of those tied with it.
        _, neg_through = below(pos_group_stop)
        if counts.shape[1] < PACKED_PREFIX_LIMIT:
            wins_twice = jnp.sum(w_pos * (neg_before + neg_through), axis=1).astype(jnp.float64)
        else:
            wins_twice = jnp.sum(w_pos.astype(jnp.float64) * (neg_before + neg_through).astype(jnp.float64), axis=1)
        out["auroc"] = wins_twice / (2 * n_pos * n_neg)

    def precision_recall(pos_below, neg_below):
        # Threshold at a tie group: everything from the group upwards is called positive.
        tp = n_pos[:, None] - pos_below.astype(jnp.float64)
        called = tp + n_neg[:, None] - neg_below.astype(jnp.float64)
        # Nothing called positive happens only above every drawn case; that point duplicates the
        # curve's (recall 0, precision 1) end and adds no area.
        return jnp.where(called > 0, tp / jnp.where(called > 0, called, 1.0), 1.0), tp / n_pos[:, None]

    if "average_precision" in which:
        precision, _ = precision_recall(pos_before, neg_before)
        out["average_precision"] = jnp.sum(w_pos * precision, axis=1) / n_pos
    if "pr_auc_trapezoid" in which:
        # One curve point per sorted position; positions of one tie group share a point (no area).
        precision, recall = precision_recall(*below(group_start))
        c = counts.shape[0]
        recall_next = jnp.concatenate([recall[:, 1:], jnp.zeros((c, 1))], axis=1)
        precision_next = jnp.concatenate([precision[:, 1:], jnp.ones((c, 1))], axis=1)
        out["pr_auc_trapezoid"] = jnp.sum((recall - recall_next) * (precision + precision_next) / 2, axis=1)
    # A resample holding one class has no ROC or PR curve (possible only without stratification).
    defined = (n_pos > 0) & (n_neg > 0)
    return {name: jnp.where(defined, value, jnp.nan) for name, value in out.items()}


def _ranking_from_indices(indices, positive_cases, models, which):
    """Ranking metrics for all models: dict name -> [models, rows]; models run one after another to bound memory."""
    counts = _counts_from_indices(indices, models[0].shape[1])
    w_pos = jnp.take(counts, positive_cases, axis=1)
    n_pos = jnp.sum(w_pos, axis=1).astype(jnp.float64)
    n_neg = counts.shape[1] - n_pos
    return jax.lax.map(lambda model: _ranking_one_model(counts, w_pos, n_pos, n_neg, model, which), models)


_ranking_replicates = jax.jit(_ranking_from_indices, static_argnames=("which",))


@functools.partial(jax.jit, static_argnames=("which",))
def _ranking_chunk(key, row_ids, cases_by_stratum, offset, size, positive_cases, models, which):
    """Draw the rows and compute the ranking metrics in one compiled call (no redraw needed)."""
    indices = _draw_indices(key, row_ids, cases_by_stratum, offset, size)
    return _ranking_from_indices(indices, positive_cases, models, which)


@jax.jit
def _linear_replicates(key, row_ids, cases_by_stratum, offset, size, per_case):
    """Count-weighted sums W @ per_case for the given rows: [rows, columns]."""
    indices = _draw_indices(key, row_ids, cases_by_stratum, offset, size)
    counts = _counts_from_indices(indices, per_case.shape[0])
    return counts.astype(jnp.float64) @ per_case


# ---------------------------------------------------------------------------------------------
# Preparing inputs


def tie_groups_ascending(score: np.ndarray):
    """Ascending order of the scores and, per sorted position, its tie group's [start, stop)."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    new_group = np.r_[True, s[1:] != s[:-1]]
    group_id = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    stops = np.r_[starts[1:], s.size]
    return order.astype(np.int32), starts[group_id].astype(np.int32), stops[group_id].astype(np.int32)


def _linear_columns(metric_infos, y_true, predictions, models, empty_mask_rule):
    """Named per-case columns whose count-weighted sums give every requested metric (see ``_finish_linear``).

    Columns shared between metrics or models (squared residuals for MSE and R², the centred targets) appear once.
    """
    columns: dict[tuple, np.ndarray] = {}
    for info in metric_infos:
        for model in models:
            if info.kind == "mask":
                prediction = predictions[model]
                stats = prediction if isinstance(prediction, M.MaskStatistics) else M.MaskStatistics.from_array(prediction)
                fn = M.dice_from_statistics if info.name == "dice" else M.iou_from_statistics
                per_case = fn(stats, empty_mask_rule)
                included = ~np.isnan(per_case)
                columns[(info.name, model)] = np.where(included, per_case, 0.0)
                columns[("included", model)] = included.astype(np.float64)
                continue
            y = np.asarray(y_true, np.float64)
            columns[("squared_error", model)] = (y - np.asarray(predictions[model], np.float64)) ** 2
            if info.name == "r2":
                # Centring y on the full-sample mean leaves every resample's total sum of squares unchanged
                # algebraically and avoids cancellation between W·y² and (W·y)²/n.
                centred = y - y.mean()
                columns[("centred_target",)] = centred
                columns[("centred_target_squared",)] = centred**2
    return columns


def _finish_linear(info: M.MetricInfo, model: str, sums: dict[tuple, np.ndarray], n: int,
                   full_total: float) -> np.ndarray:
    """Metric values from the count-weighted column sums; ``full_total`` is the test set's total sum of squares."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if info.kind == "mask":
            # Mean over the drawn cases that are not excluded; none left (all excluded) gives NaN.
            kept = sums[("included", model)]
            return np.where(kept > 0, sums[(info.name, model)] / np.where(kept > 0, kept, 1), np.nan)
        if info.name == "mse":
            return sums[("squared_error", model)] / n
        total = sums[("centred_target_squared",)] - sums[("centred_target",)] ** 2 / n
        # A resample of identical targets has no variance (up to rounding): R² is undefined there (NaN, dropped).
        return np.where(total > 1e-12 * full_total, 1 - sums[("squared_error", model)] / total, np.nan)


# ---------------------------------------------------------------------------------------------
# The driver


@dataclasses.dataclass
class Replicates:
    """Bootstrap values: ``values[metric]`` is [models, B] (NaN where a resample was dropped)."""

    values: dict[str, np.ndarray]
    models: list[str]
    attempts: np.ndarray      # [B] redraw attempt each row was finally drawn at (0 unless it held one class)
    chunk_size: int

    @property
    def n_redrawn(self) -> int:
        return int(np.count_nonzero(self.attempts))


def chunk_size_for(n_cases: int, n_resamples: int, max_chunk_elements: int) -> int:
    """Rows per chunk: at most ``max_chunk_elements`` counts per chunk, chunks of near-equal size."""
    per_chunk = max(1, min(n_resamples, max_chunk_elements // n_cases))
    n_chunks = math.ceil(n_resamples / per_chunk)
    return math.ceil(n_resamples / n_chunks)


def bootstrap_replicates(
    metric_infos: Sequence[M.MetricInfo],
    y_true,
    predictions: Mapping[str, object],
    plan: ResamplePlan,
    *,
    degenerate: str = "redraw",
    empty_mask_rule: str = "zero",
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> Replicates:
    """Every metric for every model on the B resamples of ``plan`` (the same rows for all models: paired).

    All metrics must be of one kind. ``degenerate`` applies to ranking metrics without stratification:
    ``"redraw"`` draws a row again (next attempt) until it holds both classes, ``"drop"`` keeps it and
    reports NaN for it.
    """
    kinds = {m.kind for m in metric_infos}
    if len(kinds) != 1:
        raise ValueError(f"metrics of different kinds cannot share one call: {[m.name for m in metric_infos]}")
    if degenerate not in DEGENERATE_RULES:
        raise ValueError(f"degenerate must be one of {DEGENERATE_RULES}, got {degenerate!r}")
    kind = kinds.pop()
    models = list(predictions)
    n, B = plan.n_cases, plan.n_resamples
    chunk = chunk_size_for(n, B, max_chunk_elements)
    key = jax.random.key(plan.seed)
    sampling = [jnp.asarray(a) for a in plan.sampling_arrays()]
    values = {m.name: np.empty((len(models), B)) for m in metric_infos}
    final_attempts = np.zeros(B, np.int32)

    with jax.enable_x64(True):
        if kind == "ranking":
            y = np.asarray(y_true).astype(np.int32)
            positive_cases = np.flatnonzero(y == 1).astype(np.int32)
            per_model = [_ranking_model_arrays(np.asarray(predictions[m], np.float64), y, positive_cases)
                         for m in models]
            model_arrays = tuple(jnp.asarray(np.stack(a)) for a in zip(*per_model))
            which = tuple(m.name for m in metric_infos)
            y_dev, positive_dev = jnp.asarray(y), jnp.asarray(positive_cases)
        else:
            columns = _linear_columns(metric_infos, y_true, predictions, models, empty_mask_rule)
            per_case = jnp.asarray(np.stack(list(columns.values()), axis=1))
            full_total = float(np.sum(columns.get(("centred_target_squared",), 0.0)))

        for first in range(0, B, chunk):
            # The last chunk is padded with extra rows (drawn, then discarded) so every chunk has one shape.
            row_ids = np.arange(first, first + chunk, dtype=np.int32)
            take = min(chunk, B - first)
            if kind == "ranking":
                if degenerate == "redraw" and plan.strata is None:
                    indices = _draw_indices(key, row_ids, *sampling)
                    indices, attempts = _redraw_single_class_rows(key, row_ids, indices, y_dev, sampling)
                    final_attempts[first:first + take] = attempts[:take]
                    out = _ranking_replicates(indices, positive_dev, model_arrays, which)
                else:
                    out = _ranking_chunk(key, row_ids, *sampling, positive_dev, model_arrays, which)
                for name in which:
                    values[name][:, first:first + take] = np.asarray(out[name])[:, :take]
            else:
                sums = np.asarray(_linear_replicates(key, row_ids, *sampling, per_case))[:take]
                named = dict(zip(columns, sums.T))
                for info in metric_infos:
                    for j, model in enumerate(models):
                        values[info.name][j, first:first + take] = _finish_linear(info, model, named, n, full_total)
    return Replicates(values, models, final_attempts, chunk)


def _ranking_model_arrays(score: np.ndarray, y: np.ndarray, positive_cases: np.ndarray):
    order, group_start, group_stop = tie_groups_ascending(score)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size, dtype=np.int32)
    pos_rank = rank[positive_cases]
    return order, y[order], group_start[pos_rank], group_stop[pos_rank], group_start


def _redraw_single_class_rows(key, row_ids, indices, y, sampling):
    """Redraw (next attempt of the same row's key) every row that drew only positives or only negatives."""
    n = y.shape[0]
    attempts = np.zeros(row_ids.shape, np.int32)
    for _ in range(MAX_REDRAW_ATTEMPTS):
        n_pos = np.asarray(_positives_drawn(indices, y))
        bad = (n_pos == 0) | (n_pos == n)
        if not bad.any():
            return indices, attempts
        attempts = attempts + bad
        fresh = _redraw_indices(key, row_ids, attempts, *sampling)
        indices = jnp.where(jnp.asarray(bad)[:, None], fresh, indices)
    raise RuntimeError(f"{int(bad.sum())} resamples still hold a single class after {MAX_REDRAW_ATTEMPTS} redraws; "
                       "the test set has too few cases of one class — use stratified resampling")


@jax.jit
def _positives_drawn(indices, y):
    return jnp.sum(jnp.take(y, indices), axis=1)
