"""Callbacks on the engine's hooks. The four the engine always runs (validation, metrics log,
checkpoint, progress) live here; extras are registered in ``CALLBACKS`` by name and listed in a
run config's ``trainer.callbacks``. Importing this package registers the extras defined here;
extras that need later packages (downstream tasks) register from there."""

from transferlab.train.callbacks import (
    domain_loss,
    fourier_embedding,
    hessian_trace,
    lipschitz,
    routing,
    stability,
    weight_norm,
)
from transferlab.train.callbacks.checkpointing import CheckpointCallback
from transferlab.train.callbacks.metrics_log import MetricsLogCallback
from transferlab.train.callbacks.progress import ProgressCallback
from transferlab.train.callbacks.training_state import TrainingStateCallback
from transferlab.train.callbacks.validation import ValidationCallback

__all__ = [
    "CheckpointCallback",
    "MetricsLogCallback",
    "ProgressCallback",
    "TrainingStateCallback",
    "ValidationCallback",
    "domain_loss",
    "fourier_embedding",
    "hessian_trace",
    "lipschitz",
    "routing",
    "stability",
    "weight_norm",
]
