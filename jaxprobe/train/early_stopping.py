"""Early stopping of K members on their validation losses: a state in, the next state and who improved out.

A member improves when its validation loss is at least ``min_delta`` below its best so far; that epoch becomes
its best (the weights the caller keeps). After ``patience`` epochs in a row without an improvement the member
stops for good. No JAX and no I/O: the training loop applies the decision, checkpoints store ``to_dict()``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class StoppingState:
    """Per member: best validation loss and its epoch, epochs since then, still training, epochs trained."""

    best_val_loss: tuple[float, ...]
    best_epoch: tuple[int, ...]
    bad_epochs: tuple[int, ...]
    active: tuple[bool, ...]
    epochs_trained: tuple[int, ...]

    @classmethod
    def start(cls, members: int) -> "StoppingState":
        return cls((math.inf,) * members, (-1,) * members, (0,) * members, (True,) * members, (0,) * members)

    def to_dict(self) -> dict:
        """Lists under the field names: JSON for the checkpoint's bookkeeping."""
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "StoppingState":
        return cls(**{f.name: tuple(d[f.name]) for f in dataclasses.fields(cls)})


def update(state: StoppingState, val_losses: Sequence[float], epoch: int, min_delta: float,
           patience: int) -> tuple[StoppingState, np.ndarray]:
    """Account for ``epoch``'s validation losses; returns the new state and which members improved (a stopped
    member never improves and its entries stay as they were)."""
    best, best_epoch, bad, active, trained = (list(getattr(state, f.name)) for f in dataclasses.fields(state))
    improved = np.zeros(len(active), bool)
    for k, loss in enumerate(val_losses):
        if not active[k]:
            continue
        trained[k] = epoch + 1
        if best[k] - float(loss) >= min_delta:
            improved[k] = True
            best[k], best_epoch[k], bad[k] = float(loss), epoch, 0
        else:
            bad[k] += 1
        active[k] = bad[k] < patience
    return StoppingState(tuple(best), tuple(best_epoch), tuple(bad), tuple(active), tuple(trained)), improved
