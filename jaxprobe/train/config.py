"""What a training run is given: its settings (``TrainConfig``) and its inputs (``ProbeData``), and their checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from .losses import LOSSES


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
    min_delta: float = 1e-4  # drives the patience counter only; the kept weights are the lowest validation loss
    max_epochs: int = 500  # a cap (the authors' value); early stopping normally ends training first
    seeds: tuple[int, ...] = (0,)  # initialisation seeds, one member each
    learning_rates: tuple[float, ...] = ()  # a learning-rate grid instead of (or zipped with) the seeds
    shuffle_seed: int = 0  # the batch order, shared by all members
    data_on_device: bool = False  # copy the needed rows to the devices once instead of gathering per batch
    # Binary losses: weights of the negative and positive class, (1, 1) = plain BCE. The authors' 2-class linear
    # segmentation probe trains with weighted cross-entropy, [1, 5] for pneumothorax and [1, 1] for heart.
    class_weights: tuple[float, float] = (1.0, 1.0)
    clip_grad_norm: float = 0.0  # > 0: clip gradients to this global norm first (the authors' code: 1.0)
    drop_last: bool = False  # leave out the last partial training batch each epoch (the authors' DataLoader)
    # Save a resumable checkpoint every N epochs (and always at the end); does not change any number, so it is
    # left out of the training's identity. 1 = every epoch; larger saves time on long, cheap trainings.
    checkpoint_every: int = 1

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "learning_rates", tuple(float(r) for r in self.learning_rates))
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if len(self.class_weights) != 2 or min(self.class_weights) <= 0:
            raise ValueError(f"TrainConfig.class_weights must be two positive weights (negative, positive), got "
                             f"{self.class_weights}")
        if self.clip_grad_norm < 0:
            raise ValueError(f"TrainConfig.clip_grad_norm must be >= 0 (0 = no clipping), got {self.clip_grad_norm}")
        for key in ("batch_size", "eval_batch_size", "patience", "max_epochs", "checkpoint_every"):
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

    def identity(self) -> dict:
        """The settings that change a trained head (``to_dict`` without the bookkeeping ``checkpoint_every``)."""
        d = self.to_dict()
        d.pop("checkpoint_every")
        return d

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("seeds", "learning_rates", "class_weights"):
            d[key] = list(getattr(self, key))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**{k: tuple(v) if k in ("seeds", "learning_rates", "class_weights") else v for k, v in d.items()})


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


def check_data(name: str, head, loss: str, data: ProbeData, *index_sets: np.ndarray) -> None:
    """Stop before compiling anything when the head, its loss, the data and the row indices do not fit together."""
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
