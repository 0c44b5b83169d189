"""Early stopping of K members on their validation losses: a state in, the next state and who has new best weights out.

Two things are tracked per member, as the authors' Lightning callbacks do (ModelCheckpoint on the lowest
validation loss, EarlyStopping with ``min_delta``): the lowest validation loss so far, whose epoch's weights are
the ones kept and evaluated, and the reference loss of the patience counter, which moves only when a loss is at
least ``min_delta`` below it. After ``patience`` epochs in a row without such an improvement the member stops
for good. No JAX and no I/O: the training loop applies the decision, checkpoints store ``to_dict()``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class StoppingState:
    """Per member: lowest validation loss and its epoch (the kept weights), the patience counter's reference loss,
    epochs since it last improved by min_delta, still training, epochs trained."""

    best_val_loss: tuple[float, ...]
    best_epoch: tuple[int, ...]
    bad_epochs: tuple[int, ...]
    active: tuple[bool, ...]
    epochs_trained: tuple[int, ...]
    reference_loss: tuple[float, ...] = ()

    def __post_init__(self):
        if not self.reference_loss:  # checkpoints written before the reference was tracked apart
            object.__setattr__(self, "reference_loss", self.best_val_loss)

    @classmethod
    def start(cls, members: int) -> "StoppingState":
        return cls((math.inf,) * members, (-1,) * members, (0,) * members, (True,) * members, (0,) * members,
                   (math.inf,) * members)

    def to_dict(self) -> dict:
        """Lists under the field names: JSON for the checkpoint's bookkeeping."""
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "StoppingState":
        return cls(**{f.name: tuple(d[f.name]) for f in dataclasses.fields(cls) if f.name in d})


def update(state: StoppingState, val_losses: Sequence[float], epoch: int, min_delta: float,
           patience: int) -> tuple[StoppingState, np.ndarray]:
    """Account for ``epoch``'s validation losses; returns the new state and which members reached a new lowest
    validation loss (their weights become the kept ones). A stopped member never changes."""
    best, best_epoch, bad, active, trained, reference = (list(getattr(state, f.name))
                                                         for f in dataclasses.fields(state))
    new_best = np.zeros(len(active), bool)
    for k, loss in enumerate(val_losses):
        if not active[k]:
            continue
        loss = float(loss)
        trained[k] = epoch + 1
        if loss < best[k]:
            new_best[k] = True
            best[k], best_epoch[k] = loss, epoch
        if reference[k] - loss >= min_delta:
            reference[k], bad[k] = loss, 0
        else:
            bad[k] += 1
        active[k] = bad[k] < patience
    return StoppingState(tuple(best), tuple(best_epoch), tuple(bad), tuple(active), tuple(trained),
                         tuple(reference)), new_best
