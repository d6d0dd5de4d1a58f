"""``steps_to_loss``: the first step whose logged validation loss is at most ``target`` (lower
is better).

A run that never reaches the target (or logs a NaN loss) is censored: it counts as reaching
it at its budget, ``trainer.max_steps``, and its value is marked ``censored``. The capped value
is never above the truth, so a difference involving a censored run is pulled toward zero:
verdicts err toward "inconclusive", never toward a difference that is not there. The summary
counts the censored runs next to each estimate and comparison.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from transferlab.config import MEASURES
from transferlab.experiment.measures.base import MeasureConfig, RunRecord, RunValue


@MEASURES.register("steps_to_loss")
class StepsToLossConfig(MeasureConfig):
    name: Literal["steps_to_loss"] = "steps_to_loss"
    target: float = Field(gt=0, allow_inf_nan=False)  # a validation loss (nats per target)

    direction = False

    def describe(self) -> str:
        return (
            f"the first step whose validation loss is at most {self.target:g} (a run that "
            "never reaches it counts at its max_steps, censored)"
        )

    def compute(self, run: RunRecord) -> RunValue:
        row = first_reaching(run.validation_rows(), self.target)
        if row is None:
            return RunValue(float(run.config.trainer.max_steps), censored=True)
        return RunValue(float(row["step"]))


def first_reaching(rows: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The first of the validation ``rows`` whose loss is at most ``target`` (None: none is).
    ``<=`` is False for NaN, so a diverged evaluation never counts as reaching the target."""
    return next((row for row in rows if row["val_loss"] <= target), None)
