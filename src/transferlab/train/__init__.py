"""Training: the loop, checkpoints, distributed setup and training metrics."""

from transferlab.train.checkpoint import LoadedRun, latest_checkpoint, list_checkpoints, load_run
from transferlab.train.metrics import read_metrics
from transferlab.train.trainer import TrainingDiverged, TrainResult, train

__all__ = [
    "LoadedRun",
    "TrainResult",
    "TrainingDiverged",
    "latest_checkpoint",
    "list_checkpoints",
    "load_run",
    "read_metrics",
    "train",
]
