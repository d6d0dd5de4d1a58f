"""Measures of an experiment's training runs, registered in ``config.MEASURES``: one file each.

Importing this package registers them: ``final_val_loss``, ``steps_to_loss``, ``seconds_to_loss``,
``metric`` (a field of metrics.jsonl), ``run_field`` (a column of runs.parquet),
``lr_sensitivity``, ``grokking_step`` (when a transfer curve reaches a threshold).
"""

from transferlab.experiment.measures import (
    final_val_loss,
    grokking_step,
    lr_sensitivity,
    metric,
    run_field,
    seconds_to_loss,
    steps_to_loss,
)
from transferlab.experiment.measures.base import MeasureConfig, RunRecord, RunValue

__all__ = [
    "MeasureConfig",
    "RunRecord",
    "RunValue",
    "final_val_loss",
    "grokking_step",
    "lr_sensitivity",
    "metric",
    "run_field",
    "seconds_to_loss",
    "steps_to_loss",
]
