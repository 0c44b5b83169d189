"""Training heads on stored embeddings and predicting the test cases: the public face of ``jaxprobe.train``.

Modelled on flax's ``examples/imagenet``: module-level step functions (``loop``), one loop (``fit``), early
stopping as a pure decision (``early_stopping``), batches (``batches``), checkpoints (``checkpoints``), losses
(``losses``) and test-set prediction as arrays (``predict``).
"""
from .batches import Batches, check_mesh, data_mesh
from .checkpoints import Checkpoints
from .config import ProbeData, TrainConfig, check_data
from .early_stopping import StoppingState
from .losses import LOSSES, bce_with_logits, per_sample_loss
from .loop import FitResult, TrainSteps, fit, init_members, make_optimizer, make_steps
from .predict import TestPredictions, predict

__all__ = ["Batches", "Checkpoints", "FitResult", "LOSSES", "ProbeData", "StoppingState", "TestPredictions",
           "TrainConfig", "TrainSteps", "bce_with_logits", "check_data", "check_mesh", "data_mesh", "fit",
           "init_members", "make_optimizer", "make_steps", "per_sample_loss", "predict"]
