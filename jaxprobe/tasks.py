"""The three kinds of analysis — binary segmentation, binary classification, regression — and what each one owns.

A ``Task`` says which stored target it reads (a mask, a 0/1 label, a value), which cases it uses, its loss, the
heads it accepts, its metric kind (and with it the layout of its prediction files) and default metrics, whether bootstrap
resamples are drawn within classes, and whether every encoder is scored against one ground truth. An analysis
config names a task and a target (``config.task = "segmentation"``, ``config.target = "pneumothorax"``); the
run, the inputs, the statistics and the report ask the task instead of branching on target names.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    target_kind: str  # "mask" | "label" | "value": what it reads from the store
    cases: str  # "positives" (cases with a non-empty target mask) | "labelled" (balanced on request) | "valued"
    loss: str  # jaxprobe.train loss: "bce" (logits) | "mse"
    heads: tuple[str, ...]  # heads trained for this task (jaxprobe.heads)
    # jaxprobe.metrics kind: "mask" | "ranking" | "regression"; it also fixes the prediction files' layout
    # (jaxprobe.predictions: per-case pixel counts for masks, case_id/y_true/score otherwise)
    metric_kind: str
    metrics: tuple[str, ...]  # the study's metrics for this task
    result_kind: str  # results.json "kind": "segmentation" | "classification" | "regression"
    # Resample AUROC/AUPRC within each class, so every resample keeps the test set's prevalence.
    stratifiable: bool
    # One ground truth for every encoder. False for masks: each encoder's masks live on its own input grid
    # (518 crop, 512 resize, 224 crop), so cases are paired but true areas differ between encoders.
    shared_truth: bool

    def check_head(self, head: str) -> None:
        if head not in self.heads:
            raise ConfigError(f"head.name {head!r} does not fit task {self.name!r}; expected one of {list(self.heads)}")

    def probe_targets(self, store, target: str):
        """The training targets of every store row: bool masks [N,S,S] (row-indexable), labels or values [N]."""
        if self.target_kind == "mask":
            return store.mask_rows()
        stored = store.targets()
        if target not in stored:
            raise ConfigError(f"target {target!r} is not stored with {store.path}; it has {sorted(stored)}")
        return stored[target].astype(np.float32)


SEGMENTATION = Task(
    name="segmentation", target_kind="mask", cases="positives", loss="bce", heads=("linear_seg", "custom_seg"),
    metric_kind="mask", metrics=("dice", "iou"), result_kind="segmentation",
    stratifiable=False, shared_truth=False)
CLASSIFICATION = Task(
    name="classification", target_kind="label", cases="labelled", loss="bce", heads=("linear",),
    metric_kind="ranking", metrics=("auroc", "auprc"), result_kind="classification",
    stratifiable=True, shared_truth=True)
REGRESSION = Task(
    name="regression", target_kind="value", cases="valued", loss="mse", heads=("linear",),
    metric_kind="regression", metrics=("r2", "mse"), result_kind="regression",
    stratifiable=False, shared_truth=True)

TASKS = {t.name: t for t in (SEGMENTATION, CLASSIFICATION, REGRESSION)}


def get(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"task {name!r} is not known; expected one of {sorted(TASKS)}")
    return TASKS[name]


def of_result_kind(kind: str) -> Task:
    """The task whose results.json carries ``kind`` (classification / segmentation / regression)."""
    for task in TASKS.values():
        if task.result_kind == kind:
            return task
    raise ConfigError(f"results kind {kind!r} is not known; expected one of {sorted(t.result_kind for t in TASKS.values())}")
