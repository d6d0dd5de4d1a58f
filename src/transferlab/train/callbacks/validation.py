"""Validation loss on fixed batches every ``interval`` steps and at the last step (NaN at the step
a run diverged at and stopped)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from transferlab.objectives import Batch
from transferlab.train.engine import Callback, Engine, StepOutput


class ValidationCallback(Callback):
    """Adds ``val_loss`` to the step's metrics row; ``last`` keeps the newest value.

    ``micro_batches`` are this rank's share of the validation windows, made once by the
    objective with a fixed seed, so every evaluation sees exactly the same inputs and targets.
    """

    name = "validation"

    def __init__(self, micro_batches: Sequence[Batch], interval: int) -> None:
        self.micro_batches = list(micro_batches)
        self.interval = interval
        self.last: float | None = None

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if not self.micro_batches:
            return
        if engine.step % self.interval == 0 or engine.step == engine.max_steps:
            self.last = engine.evaluate_loss(self.micro_batches)
            if self.last is not None:
                engine.row["val_loss"] = self.last

    def on_diverged_step(self, engine: Engine, out: StepOutput) -> None:
        """A diverged run's final validation loss is NaN: the weights it ends with never saw
        the diverged step, and scoring them would pass the run off as one that trained."""
        if self.micro_batches:
            self.last = math.nan
            engine.row["val_loss"] = self.last
