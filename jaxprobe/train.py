"""Train a head on stored embeddings: Optax AdamW, early stopping on validation loss, K members in one program.

A training run trains K *members* of one head at once: K seeds (different initialisations) and/or K learning
rates, stacked along a leading axis and stepped by one jitted, vmapped program, each with its own early
stopping (a stopped member is frozen; the run ends when all have stopped or at ``max_epochs``). All members
see the same batches in the same order (``shuffle_seed``), so member k of a K-member run is the same training
as a one-member run with member k's seed and learning rate.

Data stay where they are (numpy arrays or ``np.memmap``): each batch is gathered with sorted row indices,
padded to the batch size with zero-weight rows (one compiled shape; BatchNorm ignores the padding), and
sharded over the ``data`` axis of a device mesh. ``TrainConfig.data_on_device`` copies the needed rows to the
devices once instead.

With a ``workdir``, every epoch ends with an Orbax checkpoint (weights, optimiser state, early-stopping state,
history); calling ``fit`` again with the same workdir resumes, or returns at once if training had finished.
"""
from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import math
import pathlib
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from .errors import TrainingError

LOSSES = ("bce", "mse")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every number that changes a trained head; recorded with each result."""

    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    batch_size: int = 16
    eval_batch_size: int = 16
    patience: int = 10  # epochs without an improvement of at least min_delta before a member stops
    min_delta: float = 1e-4
    max_epochs: int = 100
    seeds: tuple[int, ...] = (0,)  # initialisation seeds, one member each
    learning_rates: tuple[float, ...] = ()  # a learning-rate grid instead of (or zipped with) the seeds
    shuffle_seed: int = 0  # the batch order, shared by all members
    data_on_device: bool = False  # copy the needed rows to the devices once instead of gathering per batch

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "learning_rates", tuple(float(r) for r in self.learning_rates))
        for key in ("batch_size", "eval_batch_size", "patience", "max_epochs"):
            if getattr(self, key) < 1:
                raise ValueError(f"TrainConfig.{key} must be >= 1, got {getattr(self, key)}")
        if not self.seeds:
            raise ValueError("TrainConfig.seeds must name at least one seed")
        self.members()

    def members(self) -> list[tuple[int, float]]:
        """(seed, learning rate) of each member."""
        seeds, rates = self.seeds, self.learning_rates or (self.learning_rate,)
        if len(seeds) == 1:
            seeds = seeds * len(rates)
        elif len(rates) == 1:
            rates = rates * len(seeds)
        if len(seeds) != len(rates):
            raise ValueError(f"TrainConfig: {len(self.seeds)} seeds and {len(self.learning_rates)} learning_rates; "
                             "give one of them once, or both with the same length")
        return list(zip(seeds, rates))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seeds"], d["learning_rates"] = list(self.seeds), list(self.learning_rates)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**{k: tuple(v) if k in ("seeds", "learning_rates") else v for k, v in d.items()})


@dataclasses.dataclass(frozen=True)
class ProbeData:
    """Inputs and targets of one task, indexable by integer row arrays (numpy arrays or np.memmap).

    features: name -> array with N rows ("global" [N,D] float32, "patches" [N,G,G,C] float16, ...);
    targets: [N] labels or CTR values, or [N,S,S] masks (uint8/bool); case_ids: N record ids.
    """

    features: Mapping[str, Any]
    targets: Any
    case_ids: Sequence[str]

    def __post_init__(self):
        n = len(self.case_ids)
        for name, array in list(self.features.items()) + [("targets", self.targets)]:
            if array.shape[0] != n:
                raise ValueError(f"ProbeData: {name} has {array.shape[0]} rows, case_ids has {n}")


def make_optimizer(config: TrainConfig, learning_rate: float | None = None) -> optax.GradientTransformation:
    """AdamW whose learning rate lives in the optimiser state, so members can carry different ones."""
    return optax.inject_hyperparams(optax.adamw)(
        learning_rate=config.learning_rate if learning_rate is None else learning_rate, b1=config.adam_b1,
        b2=config.adam_b2, eps=config.adam_eps, weight_decay=config.weight_decay)


@jax.custom_vjp
def bce_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise binary cross-entropy of logits, with the gradient written as sigmoid(logit) - target: one
    exponential and one log per pixel forward and none backward (the generic derivative needs several), which
    matters for 518x518 masks."""
    return _bce_forward(logits, targets)[0]


def _bce_forward(logits, targets):
    e = jnp.exp(-jnp.abs(logits))
    loss = jnp.maximum(logits, 0.0) - logits * targets + jnp.log1p(e)
    sigmoid = jnp.where(logits >= 0, 1.0, e) / (1.0 + e)
    return loss, (sigmoid - targets, logits)


def _bce_backward(residual, g):
    residual_logits, logits = residual
    return g * residual_logits, -g * logits


bce_with_logits.defvjp(_bce_forward, _bce_backward)


def per_sample_loss(kind: str, outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean loss of each sample (over its pixels for masks): [B]."""
    targets = targets.astype(jnp.float32)
    if kind == "bce":
        losses = bce_with_logits(outputs, targets)
    elif kind == "mse":
        losses = jnp.square(outputs - targets)
    else:
        raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")
    losses = losses.reshape(losses.shape[0], -1)
    # a product with a ones vector: XLA's CPU row reductions over 518*518 pixels run several times slower than
    # a matrix-vector product; HIGHEST keeps GPUs from rounding the sum through TF32
    ones = jnp.ones((losses.shape[1],), losses.dtype)
    return jnp.dot(losses, ones, precision=jax.lax.Precision.HIGHEST) / losses.shape[1]


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named ``data`` over the given (default: all) devices."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("data",))


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _select(condition: jax.Array, new: Any, old: Any) -> Any:
    """Per member (leading axis): ``new`` where condition holds, else ``old``."""
    def pick(a, b):
        return jnp.where(condition.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
    return jax.tree.map(pick, new, old)


class TrainProgram:
    """The jitted, vmapped steps of one head's K members, over states stacked on a leading member axis.

    ``train_step(params, stats, opt_state, active[K], features, targets, weights)`` -> updated
    (params, stats, opt_state) and the K batch losses; batches are shared by all members."""

    def __init__(self, graphdef_train, graphdef_eval, loss: str, config: TrainConfig):
        tx = make_optimizer(config)

        def member_loss(params, stats, features, targets, weights):
            head = nnx.merge(graphdef_train, params, stats, copy=True)
            outputs = head(*features, sample_mask=weights > 0)
            losses = per_sample_loss(loss, outputs, targets)
            return jnp.sum(losses * weights) / jnp.sum(weights), nnx.state(head, nnx.BatchStat)

        def member_step(params, stats, opt_state, active, features, targets, weights):
            (value, new_stats), grads = jax.value_and_grad(member_loss, has_aux=True)(
                params, stats, features, targets, weights)
            updates, new_opt_state = tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            def keep(new, old):  # a stopped member stays as it was
                return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)
            return keep(new_params, params), keep(new_stats, stats), keep(new_opt_state, opt_state), value

        def member_outputs(params, stats, features):
            return nnx.merge(graphdef_eval, params, stats, copy=True)(*features)

        def eval_losses(params, stats, features, targets, weights):
            outputs = jax.vmap(member_outputs, in_axes=(0, 0, None))(params, stats, features)
            losses = jax.vmap(per_sample_loss, in_axes=(None, 0, None))(loss, outputs, targets)
            return jnp.sum(losses * weights, axis=1)

        def segmentation_outputs(params, stats, features, targets, weights):
            logits = jax.vmap(member_outputs, in_axes=(0, 0, None))(params, stats, features)
            losses = jax.vmap(per_sample_loss, in_axes=(None, 0, None))(loss, logits, targets)
            # probability >= 0.5 evaluated on the logit, where sigmoid's rounding cannot move the boundary
            predicted = logits >= 0
            truth = targets.astype(bool)[None]
            intersection = jnp.sum(predicted & truth, axis=(2, 3))
            true_area = jnp.broadcast_to(jnp.sum(truth, axis=(2, 3)), intersection.shape)
            return losses, intersection, jnp.sum(predicted, axis=(2, 3)), true_area, predicted

        def scalar_outputs(params, stats, features, targets, weights):
            outputs = jax.vmap(member_outputs, in_axes=(0, 0, None))(params, stats, features)
            return jax.vmap(per_sample_loss, in_axes=(None, 0, None))(loss, outputs, targets), outputs

        self.train_step = jax.jit(jax.vmap(member_step, in_axes=(0, 0, 0, 0, None, None, None)),
                                  donate_argnums=(0, 1, 2))
        self.eval_losses = jax.jit(eval_losses)
        self.segmentation_outputs = jax.jit(segmentation_outputs)
        self.scalar_outputs = jax.jit(scalar_outputs)
        self.keep_best = jax.jit(_select)


class _Batches:
    """Gathers padded batches (features, targets, weights) sharded over the mesh's ``data`` axis."""

    def __init__(self, data: ProbeData, inputs: tuple[str, ...], mesh: Mesh, on_device: bool,
                 rows: np.ndarray):
        self.sharding = NamedSharding(mesh, P("data"))
        self.arrays = [data.features[name] for name in inputs] + [data.targets]
        self.on_device = on_device
        if on_device:
            self.rows = np.unique(rows)
            replicated = NamedSharding(mesh, P())
            self.device_arrays = [jax.device_put(np.asarray(a[self.rows]), replicated) for a in self.arrays]
            self._take = jax.jit(lambda arrays, at: [a[at] for a in arrays], out_shardings=self.sharding)

    def plan(self, indices: np.ndarray, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Split ``indices`` (in order) into batches of sorted rows, the last padded with zero-weight rows."""
        batches = []
        for start in range(0, len(indices), batch_size):
            rows = np.sort(indices[start:start + batch_size])
            weights = np.zeros(batch_size, np.float32)
            weights[:len(rows)] = 1.0
            batches.append((np.concatenate([rows, np.repeat(rows[-1:], batch_size - len(rows))]), weights))
        return batches

    def gather(self, batch: tuple[np.ndarray, np.ndarray]):
        rows, weights = batch
        if self.on_device:
            arrays = self._take(self.device_arrays, jax.device_put(np.searchsorted(self.rows, rows), self.sharding))
        else:
            arrays = [jax.device_put(np.asarray(a[rows]), self.sharding) for a in self.arrays]
        return tuple(arrays[:-1]), arrays[-1], jax.device_put(weights, self.sharding)

    def __call__(self, indices: np.ndarray, batch_size: int, depth: int = 2) -> Iterator:
        """Batches in order, gathered by a background thread ``depth`` batches ahead of the consumer."""
        plan = self.plan(indices, batch_size)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = collections.deque()
            for batch in plan:
                pending.append((batch, pool.submit(self.gather, batch)))
                if len(pending) > depth:
                    b, future = pending.popleft()
                    yield b, future.result()
            while pending:
                b, future = pending.popleft()
                yield b, future.result()


@dataclasses.dataclass
class FitResult:
    """The best-validation weights of each member (stacked on a leading axis) and what produced them."""

    name: str
    loss: str
    inputs: tuple[str, ...]
    output: str
    graphdef: Any  # evaluation-mode graph
    params: Any
    batch_stats: Any
    members: list[dict]
    history: dict
    config: dict

    def head(self, member: int = 0) -> nnx.Module:
        """Member ``member``'s best head, in evaluation mode."""
        take = lambda tree: jax.tree.map(lambda a: a[member], tree)  # noqa: E731
        return nnx.merge(self.graphdef, take(self.params), take(self.batch_stats), copy=True)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, np.int64)).tobytes())
        h.update(b"|")
    return h.hexdigest()


class _Checkpoints:
    """Orbax checkpoints of a run's arrays (as a flat dict of leaves) and its JSON bookkeeping."""

    def __init__(self, workdir: str | pathlib.Path):
        self.manager = ocp.CheckpointManager(
            pathlib.Path(workdir).absolute() / "checkpoints",
            options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False))

    def save(self, step: int, arrays: Any, meta: dict) -> None:
        leaves = {f"{i:05d}": leaf for i, leaf in enumerate(jax.tree.leaves(arrays))}
        self.manager.save(step, args=ocp.args.Composite(arrays=ocp.args.StandardSave(leaves),
                                                         meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def latest_meta(self) -> dict | None:
        step = self.manager.latest_step()
        if step is None:
            return None
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, like: Any) -> Any:
        leaves, treedef = jax.tree.flatten(like)
        abstract = {f"{i:05d}": ocp.utils.to_shape_dtype_struct(leaf) for i, leaf in enumerate(leaves)}
        step = self.manager.latest_step()
        restored = self.manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(abstract)))
        return jax.tree.unflatten(treedef, [restored["arrays"][f"{i:05d}"] for i in range(len(leaves))])


def _check_data(name: str, head: nnx.Module, loss: str, data: ProbeData, *index_sets: np.ndarray) -> None:
    if loss not in LOSSES:
        raise ValueError(f"{name}: unknown loss {loss!r}; expected one of {LOSSES}")
    missing = [f for f in head.inputs if f not in data.features]
    if missing:
        raise ValueError(f"{name}: {type(head).__name__} needs features {list(head.inputs)}, data lacks {missing} "
                         f"(has {sorted(data.features)})")
    if head.output == "mask":
        expected = (len(data.case_ids), head.input_size, head.input_size)
        if tuple(data.targets.shape) != expected:
            raise ValueError(f"{name}: segmentation targets must be masks of shape {expected}, got "
                             f"{tuple(data.targets.shape)}")
        if loss != "bce":
            raise ValueError(f"{name}: segmentation heads train with loss 'bce', got {loss!r}")
    elif tuple(data.targets.shape) != (len(data.case_ids),):
        raise ValueError(f"{name}: targets of {type(head).__name__} must have shape [N]={len(data.case_ids)}, "
                         f"got {tuple(data.targets.shape)}")
    for idx in index_sets:
        if len(idx) == 0:
            raise ValueError(f"{name}: an index set (train/val/test) is empty")
        if idx.min() < 0 or idx.max() >= len(data.case_ids):
            raise ValueError(f"{name}: indices must lie in [0, {len(data.case_ids)}), got {idx.min()}..{idx.max()}")


def _check_mesh(name: str, mesh: Mesh, config: TrainConfig) -> None:
    if "data" not in mesh.axis_names:
        raise ValueError(f"{name}: the mesh needs a 'data' axis, has {mesh.axis_names}")
    n = mesh.shape["data"]
    for key in ("batch_size", "eval_batch_size"):
        if getattr(config, key) % n:
            raise ValueError(f"{name}: TrainConfig.{key}={getattr(config, key)} must be a multiple of the {n} "
                             "devices on the mesh's 'data' axis")


def init_members(make_head: Callable[[nnx.Rngs], nnx.Module], config: TrainConfig):
    """Build one head per member and stack their states: returns (a member's head, training-mode graph,
    evaluation-mode graph, {"params", "stats", "opt_state", "best_params", "best_stats"} with a leading
    member axis)."""
    members = config.members()
    heads = [make_head(nnx.Rngs(seed)) for seed, _ in members]
    for head in heads:
        head.train()
    graphdef_train, _, _ = nnx.split(heads[0], nnx.Param, nnx.BatchStat)
    heads[0].eval()
    graphdef_eval, _, _ = nnx.split(heads[0], nnx.Param, nnx.BatchStat)
    splits = [nnx.split(h, nnx.Param, nnx.BatchStat) for h in heads]
    state = {"params": _stack([s[1] for s in splits]), "stats": _stack([s[2] for s in splits])}
    state["opt_state"] = _stack([make_optimizer(config, lr).init(s[1]) for s, (_, lr) in zip(splits, members)])
    state["best_params"] = jax.tree.map(jnp.copy, state["params"])
    state["best_stats"] = jax.tree.map(jnp.copy, state["stats"])
    return heads[0], graphdef_train, graphdef_eval, state


def fit(make_head: Callable[[nnx.Rngs], nnx.Module], data: ProbeData, train_idx: Sequence[int],
        val_idx: Sequence[int], config: TrainConfig = TrainConfig(), *, loss: str, name: str = "head",
        workdir: str | pathlib.Path | None = None, mesh: Mesh | None = None, progress: bool = True,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train ``len(config.members())`` members of the head built by ``make_head(rngs)`` and keep, for each,
    the weights of its best validation epoch.

    ``loss`` is "bce" (logits; masks or binary labels) or "mse" (regression). ``on_epoch_end(epoch, record)``
    runs after each epoch's checkpoint. Raises ``TrainingError`` (a ``FloatingPointError``) naming the head, member, epoch and step
    on a non-finite loss.
    """
    train_idx, val_idx = np.asarray(train_idx, np.int64), np.asarray(val_idx, np.int64)
    mesh = mesh if mesh is not None else data_mesh()
    members = config.members()
    head, graphdef_train, graphdef_eval, state = init_members(make_head, config)
    _check_data(name, head, loss, data, train_idx, val_idx)
    _check_mesh(name, mesh, config)
    inputs, output = tuple(head.inputs), head.output
    replicated = NamedSharding(mesh, P())
    state = jax.device_put(state, replicated)
    k_members = len(members)
    track = {"best_val_loss": [math.inf] * k_members, "best_epoch": [-1] * k_members,
             "bad_epochs": [0] * k_members, "active": [True] * k_members, "epochs_trained": [0] * k_members}
    history = {"train_loss": [], "val_loss": []}
    signature = {
        "name": name, "loss": loss, "head": type(head).__name__, "config": config.to_dict(),
        "param_shapes": [list(a.shape) for a in jax.tree.leaves(state["params"])],
        "data": _digest(train_idx, val_idx), "rows": len(data.case_ids),
    }
    first_epoch = 0
    checkpoints = _Checkpoints(workdir) if workdir is not None else None
    if checkpoints is not None and (meta := checkpoints.latest_meta()) is not None:
        if meta["signature"] != signature:
            differing = sorted(k for k in signature if meta["signature"].get(k) != signature[k])
            raise ValueError(f"{name}: {workdir} holds a checkpoint of a different training (differs in "
                             f"{differing}); use another workdir or remove that one")
        state = checkpoints.restore(state)
        track, history, first_epoch = meta["track"], meta["history"], meta["epochs_done"]

    program = TrainProgram(graphdef_train, graphdef_eval, loss, config)
    batches = _Batches(data, inputs, mesh, config.data_on_device, np.concatenate([train_idx, val_idx]))
    epochs = tqdm(range(first_epoch, config.max_epochs), desc=name, disable=not progress, unit="epoch",
                  initial=first_epoch, total=config.max_epochs)
    for epoch in epochs:
        if not any(track["active"]):
            break
        active = jax.device_put(np.asarray(track["active"]), replicated)
        order = np.random.default_rng([config.shuffle_seed, epoch]).permutation(train_idx)
        step_losses, step_weights = [], []
        params, stats, opt_state = state["params"], state["stats"], state["opt_state"]
        for (_, weights), (features, targets, weights_dev) in batches(order, config.batch_size):
            params, stats, opt_state, value = program.train_step(params, stats, opt_state, active, features,
                                                                 targets, weights_dev)
            step_losses.append(value)
            step_weights.append(weights.sum())
        state.update(params=params, stats=stats, opt_state=opt_state)
        step_losses = np.asarray(jnp.stack(step_losses))  # [steps, K]
        _raise_if_not_finite(name, "training", step_losses, members, epoch, track["active"])
        train_loss = (step_losses * np.asarray(step_weights)[:, None]).sum(0) / len(train_idx)

        val_sum = jnp.zeros(k_members)
        for _, (features, targets, weights_dev) in batches(val_idx, config.eval_batch_size):
            val_sum = val_sum + program.eval_losses(state["params"], state["stats"], features, targets, weights_dev)
        val_loss = np.asarray(val_sum) / len(val_idx)
        _raise_if_not_finite(name, "validation", val_loss[None], members, epoch, track["active"])

        was_active = np.asarray(track["active"])
        improved = was_active & (np.asarray(track["best_val_loss"]) - val_loss >= config.min_delta)
        improved_dev = jax.device_put(improved, replicated)
        state["best_params"] = program.keep_best(improved_dev, state["params"], state["best_params"])
        state["best_stats"] = program.keep_best(improved_dev, state["stats"], state["best_stats"])
        for k in range(k_members):
            if not was_active[k]:
                continue
            track["epochs_trained"][k] = epoch + 1
            if improved[k]:
                track["best_val_loss"][k], track["best_epoch"][k], track["bad_epochs"][k] = \
                    float(val_loss[k]), epoch, 0
            else:
                track["bad_epochs"][k] += 1
            track["active"][k] = track["bad_epochs"][k] < config.patience
        history["train_loss"].append([float(v) if a else None for v, a in zip(train_loss, was_active)])
        history["val_loss"].append([float(v) if a else None for v, a in zip(val_loss, was_active)])
        if checkpoints is not None:
            checkpoints.save(epoch + 1, state, {"signature": signature, "track": track, "history": history,
                                                "epochs_done": epoch + 1})
        epochs.set_postfix(val=f"{np.nanmin(np.where(was_active, val_loss, np.nan)):.4g}",
                           active=f"{sum(track['active'])}/{k_members}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, {"train_loss": train_loss.tolist(), "val_loss": val_loss.tolist(),
                                 "active": list(track["active"])})
    epochs.close()

    summary = [{"member": k, "seed": seed, "learning_rate": lr, "best_epoch": track["best_epoch"][k],
                "best_val_loss": track["best_val_loss"][k], "epochs_trained": track["epochs_trained"][k],
                "early_stopped": not track["active"][k]} for k, (seed, lr) in enumerate(members)]
    return FitResult(name=name, loss=loss, inputs=inputs, output=output, graphdef=graphdef_eval,
                     params=state["best_params"], batch_stats=state["best_stats"], members=summary,
                     history=history, config=config.to_dict())


def _raise_if_not_finite(name, what, losses, members, epoch, active) -> None:
    bad = ~np.isfinite(losses) & np.asarray(active)[None]
    if bad.any():
        step, k = map(int, np.argwhere(bad)[0])
        seed, lr = members[k]
        where = f"step {step}" if what == "training" else "the validation pass"
        raise TrainingError(
            f"{name}: non-finite {what} loss {losses[step, k]} for member {k} (seed {seed}, learning rate {lr}) "
            f"at epoch {epoch}, {where}")


def _auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUROC with tied scores sharing their average rank."""
    positives = y_true > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _r2(y_true: np.ndarray, prediction: np.ndarray) -> float:
    total = np.sum(np.square(y_true - y_true.mean()))
    return float(1.0 - np.sum(np.square(y_true - prediction)) / total) if total > 0 else math.nan


def _spread(values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def save_predictions(result: FitResult, data: ProbeData, test_idx: Sequence[int], out_dir: str | pathlib.Path, *,
                     mesh: Mesh | None = None, save_masks: bool = False, progress: bool = True) -> dict:
    """Predict the test cases with each member's best weights and write, per member k, under
    ``out_dir/member{k}/``:

    * segmentation: ``segmentation.csv`` (case_id, intersection, pred_area, true_area; prediction = probability
      >= 0.5) and, with ``save_masks``, ``masks.npy`` (bool [n,S,S], rows in the CSV's order);
    * classification / regression: ``predictions.csv`` (case_id, y_true, score; score = probability for "bce",
      the predicted value for "mse") and ``logits.npy``.

    ``out_dir/summary.json`` holds the configuration, each member's training record, test loss and headline
    metric (mean Dice, AUROC or R^2, for a first look; the statistics module is the reference) and their spread.
    Cases are written in increasing row order. Returns the summary.
    """
    test_idx = np.sort(np.asarray(test_idx, np.int64))
    config = TrainConfig.from_dict(result.config)
    mesh = mesh if mesh is not None else data_mesh()
    _check_mesh(result.name, mesh, config)
    head = result.head(0)
    _check_data(result.name, head, result.loss, data, test_idx)
    out_dir = pathlib.Path(out_dir)
    k_members = len(result.members)
    program = TrainProgram(result.graphdef, result.graphdef, result.loss, config)
    batches = _Batches(data, result.inputs, mesh, False, test_idx)
    n = len(test_idx)
    case_ids = [str(data.case_ids[i]) for i in test_idx]
    dirs = [out_dir / f"member{k}" for k in range(k_members)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    masks = None
    if result.output == "mask" and save_masks:
        size = head.input_size
        masks = [np.lib.format.open_memmap(d / "masks.npy", mode="w+", dtype=bool, shape=(n, size, size))
                 for d in dirs]
    collected = collections.defaultdict(list)
    position = 0
    for (_, weights), (features, targets, weights_dev) in tqdm(
            batches(test_idx, config.eval_batch_size), total=math.ceil(n / config.eval_batch_size),
            desc=f"{result.name} test", disable=not progress, unit="batch"):
        real = int(weights.sum())
        if result.output == "mask":
            losses, inter, pred, true, predicted = program.segmentation_outputs(
                result.params, result.batch_stats, features, targets, weights_dev)
            for key, value in (("loss", losses), ("intersection", inter), ("pred_area", pred), ("true_area", true)):
                collected[key].append(np.asarray(value)[:, :real])
            if masks is not None:
                predicted = np.asarray(predicted)
                for k in range(k_members):
                    masks[k][position:position + real] = predicted[k, :real]
        else:
            losses, outputs = program.scalar_outputs(result.params, result.batch_stats, features, targets,
                                                     weights_dev)
            collected["loss"].append(np.asarray(losses)[:, :real])
            collected["output"].append(np.asarray(outputs)[:, :real])
        position += real
    columns = {key: np.concatenate(parts, axis=1) for key, parts in collected.items()}
    if masks is not None:
        for m in masks:
            m.flush()

    member_reports = []
    for k, d in enumerate(dirs):
        report = dict(result.members[k], test_loss=float(columns["loss"][k].mean()))
        if result.output == "mask":
            inter, pred, true = (columns[c][k].astype(np.int64) for c in ("intersection", "pred_area", "true_area"))
            _write_csv(d / "segmentation.csv", ("case_id", "intersection", "pred_area", "true_area"),
                       zip(case_ids, inter, pred, true))
            denominator = pred + true
            # both masks empty counts as perfect agreement
            dice = np.where(denominator > 0, 2 * inter / np.maximum(denominator, 1), 1.0)
            report["metric"], report["test_mean_dice"] = "dice", float(dice.mean())
        else:
            y_true = np.asarray(data.targets[test_idx], np.float64)
            logits = columns["output"][k]
            score = 1.0 / (1.0 + np.exp(-logits.astype(np.float64))) if result.loss == "bce" else logits
            _write_csv(d / "predictions.csv", ("case_id", "y_true", "score"), zip(case_ids, y_true, score))
            np.save(d / "logits.npy", logits)
            if result.loss == "bce":
                report["metric"], report["test_auroc"] = "auroc", _auroc(y_true, score)
            else:
                report["metric"], report["test_r2"] = "r2", _r2(y_true, score)
        member_reports.append(report)
    metric_key = {"dice": "test_mean_dice", "auroc": "test_auroc", "r2": "test_r2"}[member_reports[0]["metric"]]
    summary = {
        "name": result.name, "loss": result.loss, "config": result.config, "n_test": n,
        "members": member_reports,
        "spread": {"test_loss": _spread([r["test_loss"] for r in member_reports]),
                   metric_key: _spread([r[metric_key] for r in member_reports]),
                   "best_val_loss": _spread([r["best_val_loss"] for r in member_reports])},
        "history": result.history,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _write_csv(path: pathlib.Path, header: Sequence[str], rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row])
