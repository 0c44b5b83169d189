"""Orbax checkpoints of a training run: arrays each epoch, bookkeeping as JSON, and resuming only the same run."""
from __future__ import annotations

import hashlib
import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ..errors import CheckpointError


def digest(*arrays: np.ndarray) -> str:
    """A short fingerprint of integer arrays (the train/validation rows), so a checkpoint names its data."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, np.int64)).tobytes())
        h.update(b"|")
    return h.hexdigest()


class Checkpoints:
    """Orbax checkpoints of a run's arrays (as a flat dict of leaves) and its JSON bookkeeping."""

    def __init__(self, workdir: str | pathlib.Path):
        self.workdir = workdir
        self.manager = ocp.CheckpointManager(
            pathlib.Path(workdir).absolute() / "checkpoints",
            options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False))

    def save(self, step: int, arrays: Any, meta: dict) -> None:
        # leaves under stable names: restoring needs only the tree structure of a fresh state, not Orbax's own
        leaves = {f"{i:05d}": leaf for i, leaf in enumerate(jax.tree.leaves(arrays))}
        self.manager.save(step, args=ocp.args.Composite(arrays=ocp.args.StandardSave(leaves),
                                                         meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()

    def latest_meta(self) -> dict | None:
        step = self.manager.latest_step()
        if step is None:
            return None
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def resumable_meta(self, name: str, signature: dict) -> dict | None:
        """The latest bookkeeping if it belongs to the training ``signature`` describes, None if there is none;
        a checkpoint of another training stops the run rather than being silently continued."""
        meta = self.latest_meta()
        if meta is not None and meta["signature"] != signature:
            differing = sorted(k for k in signature if meta["signature"].get(k) != signature[k])
            raise CheckpointError(f"{name}: {self.workdir} holds a checkpoint of a different training (differs in "
                                  f"{differing}); use another workdir or remove that one")
        return meta

    def restore(self, like: Any) -> Any:
        leaves, treedef = jax.tree.flatten(like)
        abstract = {f"{i:05d}": ocp.utils.to_shape_dtype_struct(leaf) for i, leaf in enumerate(leaves)}
        step = self.manager.latest_step()
        restored = self.manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(abstract)))
        return jax.tree.unflatten(treedef, [restored["arrays"][f"{i:05d}"] for i in range(len(leaves))])
