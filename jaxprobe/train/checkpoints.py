"""Orbax checkpoints of a training run: arrays each epoch, bookkeeping as JSON, and resuming only the same run."""
from __future__ import annotations

import hashlib
import logging
import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ..errors import CheckpointError

log = logging.getLogger("jaxprobe.train")


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

    def _readable_step(self, like: Any | None = None) -> tuple[int, dict, Any] | None:
        """(step, meta, arrays) of the newest step that reads back whole; older steps are tried when the newest
        is damaged (Orbax keeps two). None when there is no step; CheckpointError when none is readable."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            return None
        problems = []
        for step in steps:
            try:
                meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
                if not isinstance(meta, dict) or "signature" not in meta:
                    raise ValueError("bookkeeping without a signature")
                arrays = self._restore_arrays(step, like) if like is not None else None
            except Exception as e:  # noqa: BLE001 - Orbax, JSON, tensorstore and OS errors of a damaged step
                problems.append(f"step {step}: {type(e).__name__}: {str(e)[:200]}")
                log.warning(f"{self.workdir}: checkpoint step {step} is unreadable ({type(e).__name__}); trying an "
                            "older one")
                continue
            for damaged in (d for d in steps if d > step):  # out of the way of the steps training saves next
                log.warning(f"{self.workdir}: removing unreadable checkpoint step {damaged}; resuming from {step}")
                self.manager.delete(damaged)
            return step, meta, arrays
        raise CheckpointError(f"{self.workdir}: no readable checkpoint ({'; '.join(problems)}); delete "
                              f"{pathlib.Path(self.workdir).absolute() / 'checkpoints'} to train from the start")

    def latest_meta(self) -> dict | None:
        found = self._readable_step()
        return None if found is None else found[1]

    def resumable_meta(self, name: str, signature: dict) -> dict | None:
        """The newest readable bookkeeping if it belongs to the training ``signature`` describes, None if there is
        none; a checkpoint of another training stops the run rather than being silently continued."""
        meta = self.latest_meta()
        if meta is not None and meta["signature"] != signature:
            differing = sorted(k for k in signature if meta["signature"].get(k) != signature[k])
            raise CheckpointError(f"{name}: {self.workdir} holds a checkpoint of a different training (differs in "
                                  f"{differing}); use another workdir or remove that one")
        return meta

    def restore(self, like: Any) -> tuple[Any, dict]:
        """(arrays shaped like ``like``, their bookkeeping) of the newest readable step."""
        found = self._readable_step(like)
        if found is None:
            raise CheckpointError(f"{self.workdir}: no checkpoint to restore")
        return found[2], found[1]

    def _restore_arrays(self, step: int, like: Any) -> Any:
        leaves, treedef = jax.tree.flatten(like)
        abstract = {f"{i:05d}": ocp.utils.to_shape_dtype_struct(leaf) for i, leaf in enumerate(leaves)}
        restored = self.manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(abstract)))
        return jax.tree.unflatten(treedef, [restored["arrays"][f"{i:05d}"] for i in range(len(leaves))])
