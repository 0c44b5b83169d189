"""The training loop: K members of one head stepped by one jitted, vmapped program until early stopping ends them.

A training run trains K *members* of one head at once: K seeds (different initialisations) and/or K learning
rates, stacked along a leading axis and stepped by one jitted, vmapped program, each with its own early
stopping (a stopped member is frozen; the run ends when all have stopped or at ``max_epochs``). All members
see the same batches in the same order (``shuffle_seed``), so member k of a K-member run is the same training
as a one-member run with member k's seed and learning rate.

With a ``workdir``, every ``checkpoint_every``-th epoch and the last one end with an Orbax checkpoint (weights,
optimiser state, early-stopping state, history), and ``history.csv`` gains each epoch's losses as it ends;
calling ``fit`` again with the same workdir resumes (replaying the epochs after the last checkpoint, which
gives the same numbers: batch order and steps are deterministic), or returns at once if training had finished.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from ..errors import TrainingError
from . import early_stopping
from .batches import Batches, check_mesh, data_mesh
from .checkpoints import Checkpoints, digest
from .config import ProbeData, TrainConfig, check_data
from .losses import per_sample_loss

log = logging.getLogger("jaxprobe.train")

def make_optimizer(config: TrainConfig, learning_rate: float | None = None) -> optax.GradientTransformation:
    """AdamW whose learning rate lives in the optimiser state, so members can carry different ones; with
    ``clip_grad_norm`` > 0 the gradients are first clipped to that global norm (the authors' Lightning
    ``gradient_clip_val=1.0``)."""
    adamw = optax.inject_hyperparams(optax.adamw)(
        learning_rate=config.learning_rate if learning_rate is None else learning_rate, b1=config.adam_b1,
        b2=config.adam_b2, eps=config.adam_eps, weight_decay=config.weight_decay)
    if config.clip_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.clip_grad_norm), adamw)
    return adamw


# ------------------------------------------------------------------------------------------- step functions
def member_loss(graphdef, loss: str, class_weights, params, stats, features, targets, weights):
    """One member's weighted mean batch loss (padding rows weigh 0) and its updated BatchNorm statistics."""
    head = nnx.merge(graphdef, params, stats, copy=True)
    outputs = head(*features, sample_mask=weights > 0)
    losses = per_sample_loss(loss, outputs, targets, class_weights)
    return jnp.sum(losses * weights) / jnp.sum(weights), nnx.state(head, nnx.BatchStat)


def member_step(graphdef, loss: str, class_weights, tx, params, stats, opt_state, active, features, targets,
                weights):
    (value, new_stats), grads = jax.value_and_grad(functools.partial(member_loss, graphdef, loss, class_weights),
                                                   has_aux=True)(
        params, stats, features, targets, weights)
    updates, new_opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)

    def keep(new, old):  # a stopped member stays as it was
        return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)
    return keep(new_params, params), keep(new_stats, stats), keep(new_opt_state, opt_state), value


def members_outputs(graphdef, params, stats, features):
    """Every member's outputs for one shared batch: [K, B, ...]."""
    def member_outputs(params, stats, features):
        return nnx.merge(graphdef, params, stats, copy=True)(*features)
    return jax.vmap(member_outputs, in_axes=(0, 0, None))(params, stats, features)


def members_losses(loss: str, outputs, targets, class_weights=(1.0, 1.0)):
    """Per-sample losses of every member's outputs against the shared targets: [K, B]."""
    member = functools.partial(per_sample_loss, loss, class_weights=tuple(class_weights))
    return jax.vmap(member, in_axes=(0, None))(outputs, targets)


def eval_losses(graphdef, loss: str, class_weights, params, stats, features, targets, weights):
    """Each member's summed validation loss over the real rows of a batch: [K]."""
    losses = members_losses(loss, members_outputs(graphdef, params, stats, features), targets, class_weights)
    return jnp.sum(losses * weights, axis=1)


def select_members(condition: jax.Array, new: Any, old: Any) -> Any:
    """Per member (leading axis): ``new`` where condition holds, else ``old``."""
    def pick(a, b):
        return jnp.where(condition.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
    return jax.tree.map(pick, new, old)


keep_best = jax.jit(select_members)


class TrainSteps(NamedTuple):
    """The compiled steps of one head's K members, over states stacked on a leading member axis.

    ``train_step(params, stats, opt_state, active[K], features, targets, weights)`` -> updated
    (params, stats, opt_state) and the K batch losses; batches are shared by all members."""

    train_step: Callable
    eval_losses: Callable


def make_steps(graphdef_train, graphdef_eval, loss: str, config: TrainConfig) -> TrainSteps:
    weights = tuple(config.class_weights)
    train = functools.partial(member_step, graphdef_train, loss, weights, make_optimizer(config))
    return TrainSteps(
        train_step=jax.jit(jax.vmap(train, in_axes=(0, 0, 0, 0, None, None, None)), donate_argnums=(0, 1, 2)),
        eval_losses=jax.jit(functools.partial(eval_losses, graphdef_eval, loss, weights)))


# ------------------------------------------------------------------------------------------- the members
def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


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


# ------------------------------------------------------------------------------------------- the loop
def fit(make_head: Callable[[nnx.Rngs], nnx.Module], data: ProbeData, train_idx: Sequence[int],
        val_idx: Sequence[int], config: TrainConfig = TrainConfig(), *, loss: str, name: str = "head",
        workdir: str | pathlib.Path | None = None, mesh: Mesh | None = None, progress: bool = True,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train ``len(config.members())`` members of the head built by ``make_head(rngs)`` and keep, for each,
    the weights of its best validation epoch.

    ``loss`` is "bce" (logits; masks or binary labels) or "mse" (regression). ``on_epoch_end(epoch, record)``
    runs after each epoch's checkpoint. Raises ``TrainingError`` (a ``FloatingPointError``) naming the head,
    member, epoch and step on a non-finite loss.
    """
    train_idx, val_idx = np.asarray(train_idx, np.int64), np.asarray(val_idx, np.int64)
    mesh = mesh if mesh is not None else data_mesh()
    members = config.members()
    head, graphdef_train, graphdef_eval, state = init_members(make_head, config)
    check_data(name, head, loss, data, train_idx, val_idx)
    check_mesh(name, mesh, config)
    if config.drop_last and len(train_idx) < config.batch_size:
        raise TrainingError(f"{name}: drop_last with {len(train_idx)} training cases, fewer than one batch of "
                            f"{config.batch_size}: no training step would run")
    inputs, output = tuple(head.inputs), head.output
    replicated = NamedSharding(mesh, P())
    state = jax.device_put(state, replicated)
    k_members = len(members)
    stopping = early_stopping.StoppingState.start(k_members)
    history = {"train_loss": [], "val_loss": [], "best": []}
    signature = {
        "name": name, "loss": loss, "head": type(head).__name__, "config": config.identity(),
        "param_shapes": [list(a.shape) for a in jax.tree.leaves(state["params"])],
        "data": digest(train_idx, val_idx), "rows": len(data.case_ids),
    }
    first_epoch = 0
    checkpoints = Checkpoints(workdir) if workdir is not None else None
    if checkpoints is not None and checkpoints.resumable_meta(name, signature) is not None:
        state, meta = checkpoints.restore(state)  # the newest readable step (arrays and bookkeeping together)
        stopping = early_stopping.StoppingState.from_dict(meta["track"])
        history, first_epoch = meta["history"], meta["epochs_done"]
    curves = HistoryFile(workdir, members, history) if workdir is not None else None

    steps = make_steps(graphdef_train, graphdef_eval, loss, config)
    batches = Batches(data, inputs, mesh, config.data_on_device, np.concatenate([train_idx, val_idx]))
    epochs = tqdm(range(first_epoch, config.max_epochs), desc=name, disable=not progress, unit="epoch",
                  initial=first_epoch, total=config.max_epochs)
    for epoch in epochs:
        if not any(stopping.active):
            break
        was_active = np.asarray(stopping.active)
        active = jax.device_put(was_active, replicated)
        order = np.random.default_rng([config.shuffle_seed, epoch]).permutation(train_idx)
        step_losses, step_weights = [], []
        params, stats, opt_state = state["params"], state["stats"], state["opt_state"]
        for (_, weights), (features, targets, weights_dev) in batches(order, config.batch_size,
                                                                      drop_last=config.drop_last):
            params, stats, opt_state, value = steps.train_step(params, stats, opt_state, active, features,
                                                               targets, weights_dev)
            step_losses.append(value)
            step_weights.append(weights.sum())
        state.update(params=params, stats=stats, opt_state=opt_state)
        step_losses = np.asarray(jnp.stack(step_losses))  # [steps, K]
        _raise_if_not_finite(name, "training", step_losses, members, epoch, was_active)
        train_loss = (step_losses * np.asarray(step_weights)[:, None]).sum(0) / np.sum(step_weights)

        val_sum = jnp.zeros(k_members)
        for _, (features, targets, weights_dev) in batches(val_idx, config.eval_batch_size):
            val_sum = val_sum + steps.eval_losses(state["params"], state["stats"], features, targets, weights_dev)
        val_loss = np.asarray(val_sum) / len(val_idx)
        _raise_if_not_finite(name, "validation", val_loss[None], members, epoch, was_active)

        # the weights kept are those of each member's lowest validation loss; min_delta only drives patience
        stopping, improved = early_stopping.update(stopping, val_loss, epoch, config.min_delta, config.patience)
        improved_dev = jax.device_put(improved, replicated)
        state["best_params"] = keep_best(improved_dev, state["params"], state["best_params"])
        state["best_stats"] = keep_best(improved_dev, state["stats"], state["best_stats"])
        history["train_loss"].append([float(v) if a else None for v, a in zip(train_loss, was_active)])
        history["val_loss"].append([float(v) if a else None for v, a in zip(val_loss, was_active)])
        history["best"].append([bool(b) for b in np.asarray(improved)])
        if curves is not None:
            curves.append(epoch, history)
        last = not any(stopping.active) or epoch + 1 == config.max_epochs
        if checkpoints is not None and ((epoch + 1) % config.checkpoint_every == 0 or last):
            checkpoints.save(epoch + 1, state, {"signature": signature, "track": stopping.to_dict(),
                                                "history": history, "epochs_done": epoch + 1})
        epochs.set_postfix(val=f"{np.nanmin(np.where(was_active, val_loss, np.nan)):.4g}",
                           active=f"{sum(stopping.active)}/{k_members}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, {"train_loss": train_loss.tolist(), "val_loss": val_loss.tolist(),
                                 "active": list(stopping.active)})
    epochs.close()

    summary = [{"member": k, "seed": seed, "learning_rate": lr, "best_epoch": stopping.best_epoch[k],
                "best_val_loss": stopping.best_val_loss[k], "epochs_trained": stopping.epochs_trained[k],
                "early_stopped": not stopping.active[k],
                "stopped_by": "early_stopping" if not stopping.active[k] else "epoch_cap"}
               for k, (seed, lr) in enumerate(members)]
    capped = [m for m in summary if m["stopped_by"] == "epoch_cap"]
    if capped:  # the weights are then the best of a training that was cut short, not an early-stopped one
        log.warning(f"{name}: member(s) {[m['member'] for m in capped]} stopped at the epoch cap "
                    f"(max_epochs={config.max_epochs}) before early stopping ended them")
    return FitResult(name=name, loss=loss, inputs=inputs, output=output, graphdef=graphdef_eval,
                     params=state["best_params"], batch_stats=state["best_stats"], members=summary,
                     history=history, config=config.to_dict())


class HistoryFile:
    """``<workdir>/history.csv``, one row per member and epoch, appended as training goes: epoch, member, seed,
    learning_rate, train_loss, val_loss, active, best (this epoch set the member's lowest validation loss so far).
    On resume it is rewritten from the checkpoint's history, so it never holds epochs the checkpoint lost."""

    COLUMNS = ("epoch", "member", "seed", "learning_rate", "train_loss", "val_loss", "active", "best")

    def __init__(self, workdir, members, history):
        self.path = pathlib.Path(workdir) / "history.csv"
        self.members = members
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w") as f:
            f.write(",".join(self.COLUMNS) + "\n")
            f.writelines(self._rows(e, history) for e in range(len(history["train_loss"])))

    def _rows(self, epoch: int, history: dict) -> str:
        out = []
        best = history.get("best", [])
        for k, (seed, lr) in enumerate(self.members):
            train, val = history["train_loss"][epoch][k], history["val_loss"][epoch][k]
            active = train is not None
            is_best = bool(best[epoch][k]) if epoch < len(best) else False
            out.append(f"{epoch},{k},{seed},{lr!r},{'' if train is None else repr(train)},"
                       f"{'' if val is None else repr(val)},{int(active)},{int(is_best and active)}\n")
        return "".join(out)

    def append(self, epoch: int, history: dict) -> None:
        with open(self.path, "a") as f:
            f.write(self._rows(epoch, history))


def _raise_if_not_finite(name, what, losses, members, epoch, active) -> None:
    bad = ~np.isfinite(losses) & np.asarray(active)[None]
    if bad.any():
        step, k = map(int, np.argwhere(bad)[0])
        seed, lr = members[k]
        where = f"step {step}" if what == "training" else "the validation pass"
        raise TrainingError(
            f"{name}: non-finite {what} loss {losses[step, k]} for member {k} (seed {seed}, learning rate {lr}) "
            f"at epoch {epoch}, {where}")
