"""``grokking_step``: the first evaluation step at which a transfer curve's mean ``metric``
(default ``correct``: accuracy) reaches ``threshold``, read from the run's downstream rows
(the ``downstream`` callback, which an experiment's ``curves:`` adds); lower is better.

``task`` names the curve (a task label, e.g. the test-split accuracy). With ``since`` (another
curve, e.g. the train-split accuracy) the value is the gap: the step ``task`` reaches the
threshold minus the step ``since`` does, how long generalization lags memorization (Power et
al. 2022: test accuracy rises long after train accuracy). The resolution is the curve's
``every``: a curve reaches the threshold at the first evaluation at or above it.

Censoring, as ``steps_to_loss``: a ``task`` curve that never reaches the threshold counts as
reaching it at the run's budget, ``trainer.max_steps``, and the value is marked ``censored``
(the summary and the report say "not reached within N steps" by counting them). The capped
value is never above the truth, so a difference with a censored run is pulled toward zero and
verdicts err toward "inconclusive". With ``since``, a ``since`` curve that never reaches the
threshold has no gap (NaN: left out of the estimates, and counted).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Literal

from pydantic import Field

from transferlab.config import MEASURES
from transferlab.evaluate.downstream import read_downstream
from transferlab.experiment.measures.base import MeasureConfig, RunRecord, RunValue


@MEASURES.register("grokking_step")
class GrokkingStepConfig(MeasureConfig):
    """The first step a downstream curve's mean metric reaches a threshold (censored at
    max_steps), or its gap to another curve's step."""

    name: Literal["grokking_step"] = "grokking_step"
    task: str = Field(min_length=1)  # the curve's task label (say, test-split accuracy)
    metric: str = "correct"  # the per-example metric whose mean is compared to the threshold
    threshold: float = Field(default=0.9, allow_inf_nan=False)  # the mean the curve must reach
    # a second curve's label (say, train-split accuracy): the value is then task's step minus
    # this one's; None: task's step itself
    since: str | None = None

    direction = False

    def describe(self) -> str:
        what = (
            f"the first step where {self.task}'s mean {self.metric} is at least {self.threshold:g}"
        )
        if self.since is not None:
            what += f", minus the step where {self.since}'s is"
        return f"{what} (not reached within max_steps: counted at max_steps, censored)"

    def compute(self, run: RunRecord) -> RunValue:
        curves = curve_means(run, self.metric)
        budget = float(run.config.trainer.max_steps)
        reached = first_step_at(self._curve(curves, self.task, run), self.threshold)
        if self.since is None:
            return RunValue(budget, censored=True) if reached is None else RunValue(reached)
        start = first_step_at(self._curve(curves, self.since, run), self.threshold)
        if start is None:  # memorization never happened: no gap to measure
            return RunValue(math.nan)
        if reached is None:
            return RunValue(budget - start, censored=True)
        return RunValue(reached - start)

    def _curve(
        self, curves: dict[str, dict[int, float]], task: str, run: RunRecord
    ) -> dict[int, float]:
        if task not in curves:
            raise ValueError(
                f"measure {self.measure_label!r}: {run.describe()} has no downstream curve "
                f"{task!r} (it has {sorted(curves)}); list the task in the experiment's "
                "curves: tasks (or its tasks) under that label"
            )
        return curves[task]


def curve_means(run: RunRecord, metric: str) -> dict[str, dict[int, float]]:
    """Per downstream task label, per step, the mean of ``metric`` over the step's examples."""
    if run.run_dir is None:
        raise ValueError(f"{run.describe()} has no run directory to read its curves from")
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in read_downstream(run.run_dir):
        if metric not in row:
            raise ValueError(
                f"downstream task {row['task']!r} of {run.describe()} has no metric {metric!r}; "
                "name one of its declared metrics"
            )
        sums[row["task"]][int(row["step"])].append(float(row[metric]))
    return {
        task: {step: sum(v) / len(v) for step, v in sorted(steps.items())}
        for task, steps in sums.items()
    }


def first_step_at(curve: dict[int, float], threshold: float) -> float | None:
    """The first step (in step order) whose value is at least ``threshold``; None if none is."""
    step = next((s for s, value in sorted(curve.items()) if value >= threshold), None)
    return None if step is None else float(step)
