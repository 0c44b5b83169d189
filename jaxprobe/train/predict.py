"""Test-set outputs of a fitted head, all members at once, as numpy arrays (``jaxprobe.predictions`` writes files)."""
from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from .batches import Batches, check_mesh, data_mesh
from .config import ProbeData, TrainConfig, check_data
from .loop import FitResult, members_losses, members_outputs


@dataclasses.dataclass(frozen=True)
class TestPredictions:
    """Per test case (increasing row order) and member: the loss and either mask pixel counts or scalar outputs.

    case_ids [n]; loss [K,n]. Mask heads: intersection, pred_area, true_area [K,n] int64 of the prediction
    (probability >= the mask threshold) against the true mask. Scalar heads: outputs [K,n] (logits for "bce", values for "mse") and
    y_true [n] float64."""

    __test__ = False  # not a pytest test class, despite its name

    case_ids: np.ndarray
    loss: np.ndarray
    intersection: np.ndarray | None = None
    pred_area: np.ndarray | None = None
    true_area: np.ndarray | None = None
    outputs: np.ndarray | None = None
    y_true: np.ndarray | None = None

    @property
    def is_mask(self) -> bool:
        return self.intersection is not None


def segmentation_outputs(graphdef, loss: str, class_weights, threshold_logit: float, params, stats, features, targets,
                         weights):
    """Losses and pixel counts of each member's binarised masks, and the masks themselves: [K, B] / [K, B, S, S]."""
    logits = members_outputs(graphdef, params, stats, features)
    losses = members_losses(loss, logits, targets, class_weights)
    # probability >= threshold evaluated on the logit, where sigmoid's rounding cannot move the boundary
    predicted = logits >= threshold_logit
    truth = targets.astype(bool)[None]
    intersection = jnp.sum(predicted & truth, axis=(2, 3))
    true_area = jnp.broadcast_to(jnp.sum(truth, axis=(2, 3)), intersection.shape)
    return losses, intersection, jnp.sum(predicted, axis=(2, 3)), true_area, predicted


def scalar_outputs(graphdef, loss: str, class_weights, params, stats, features, targets, weights):
    """Losses and raw outputs (logits or values) of each member: [K, B] each."""
    outputs = members_outputs(graphdef, params, stats, features)
    return members_losses(loss, outputs, targets, class_weights), outputs


def predict(result: FitResult, data: ProbeData, test_idx: Sequence[int], *, mesh: Mesh | None = None,
            progress: bool = True, mask_threshold: float = 0.5,
            mask_sink: Callable[[int, np.ndarray], None] | None = None) -> TestPredictions:
    """Predict the test cases with each member's best weights, in increasing row order.

    A mask pixel is foreground where its probability is at least ``mask_threshold``. A mask head's full predicted
    masks (too many to hold for thousands of 518x518 images per member) go to
    ``mask_sink(start, masks)`` batch by batch, ``masks`` bool [K, b, S, S] for test positions start..start+b;
    scalar heads ignore it."""
    test_idx = np.sort(np.asarray(test_idx, np.int64))
    config = TrainConfig.from_dict(result.config)
    mesh = mesh if mesh is not None else data_mesh()
    check_mesh(result.name, mesh, config)
    check_data(result.name, result.head(0), result.loss, data, test_idx)
    mask_head = result.output == "mask"
    if not 0.0 < mask_threshold < 1.0:
        raise ValueError(f"{result.name}: mask_threshold must be a probability in (0, 1), got {mask_threshold}")
    weights = tuple(config.class_weights)
    if mask_head:  # p >= t  <=>  logit >= log(t / (1 - t)); exactly 0 for the default 0.5
        threshold_logit = 0.0 if mask_threshold == 0.5 else float(np.log(mask_threshold / (1.0 - mask_threshold)))
        step = jax.jit(functools.partial(segmentation_outputs, result.graphdef, result.loss, weights, threshold_logit))
    else:
        step = jax.jit(functools.partial(scalar_outputs, result.graphdef, result.loss, weights))
    batches = Batches(data, result.inputs, mesh, False, test_idx)
    n = len(test_idx)
    collected = collections.defaultdict(list)
    position = 0
    for (_, weights), (features, targets, weights_dev) in tqdm(
            batches(test_idx, config.eval_batch_size), total=math.ceil(n / config.eval_batch_size),
            desc=f"{result.name} test", disable=not progress, unit="batch"):
        real = int(weights.sum())
        outputs = step(result.params, result.batch_stats, features, targets, weights_dev)
        if mask_head:
            keys = ("loss", "intersection", "pred_area", "true_area")
            if mask_sink is not None:
                mask_sink(position, np.asarray(outputs[-1])[:, :real])
        else:
            keys = ("loss", "outputs")
        for key, value in zip(keys, outputs):
            collected[key].append(np.asarray(value)[:, :real])
        position += real
    columns = {key: np.concatenate(parts, axis=1) for key, parts in collected.items()}
    case_ids = np.array([str(data.case_ids[i]) for i in test_idx], dtype=str)
    if mask_head:
        return TestPredictions(case_ids, columns["loss"],
                               **{c: columns[c].astype(np.int64) for c in ("intersection", "pred_area", "true_area")})
    return TestPredictions(case_ids, columns["loss"], outputs=columns["outputs"],
                           y_true=np.asarray(data.targets[test_idx], np.float64))
