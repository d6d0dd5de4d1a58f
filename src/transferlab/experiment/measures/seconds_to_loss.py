"""``seconds_to_loss``: the training seconds a run took to log a validation loss at most
``target`` (lower is better), the wall-clock companion of ``steps_to_loss``.

It reads ``elapsed_s`` of the first validation row that reaches the target: the engine's
training seconds from the run's first step to that row (resumed runs count the seconds of
their earlier attempts up to the checkpoint), so it includes what the run did on the way:
forward, backward, the optimizer (Muon's orthogonalization), callbacks that change the weights
(a ``lipschitz`` constraint) and the validations before it. Data preparation and model
construction are not in it.

A run that never reaches the target is censored like ``steps_to_loss``: it counts as reaching
it at its training seconds (``elapsed_s`` of its last row), which is never above the truth.
A row without ``elapsed_s`` is a missing value (NaN: its seed drops out, counted). Wall time
depends on the machine and its load: compare runs that trained side by side on one machine, and
read the value as that machine's.
"""

from __future__ import annotations

from typing import Literal

from transferlab.config import MEASURES
from transferlab.experiment.measures.base import RunRecord, RunValue, as_number
from transferlab.experiment.measures.steps_to_loss import StepsToLossConfig, first_reaching


@MEASURES.register("seconds_to_loss")
class SecondsToLossConfig(StepsToLossConfig):
    name: Literal["seconds_to_loss"] = "seconds_to_loss"

    def describe(self) -> str:
        return (
            f"training seconds (elapsed_s) to the first validation loss at most {self.target:g} "
            "(a run that never reaches it counts at its training seconds, censored)"
        )

    def compute(self, run: RunRecord) -> RunValue:
        row = first_reaching(run.validation_rows(), self.target)
        censored = row is None
        if censored:
            row = run.metrics[-1]  # the run's whole training time
        what = f"measure {self.measure_label!r}: elapsed_s of {run.describe()}"
        return RunValue(as_number(row.get("elapsed_s"), what), censored=censored)
