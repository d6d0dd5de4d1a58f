"""``metric``: one field of a run's ``metrics.jsonl`` (anything a callback logs, e.g. the
stability callback's ``attn_logit_max``), reduced over the rows that log it. A run that diverged
(and stopped) before logging the field has no value (NaN: left out of the estimates, counted)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field

from transferlab.config import MEASURES
from transferlab.experiment.measures.base import (
    MeasureConfig,
    RunRecord,
    RunValue,
    as_number,
)

# NaN propagates (a diverged value makes the run's value missing, not silently skipped).
REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "last": lambda values: values[-1],
    "max": lambda values: float(np.max(values)),
    "min": lambda values: float(np.min(values)),
    "mean": lambda values: float(np.mean(values)),
}


@MEASURES.register("metric")
class MetricConfig(MeasureConfig):
    name: Literal["metric"] = "metric"
    field: str = Field(min_length=1)  # a key of metrics.jsonl rows (attn_logit_max, ...)
    reduce: Literal["last", "max", "min", "mean"] = "last"  # over the rows that log the field

    def describe(self) -> str:
        return f"{self.reduce} of {self.field} over the rows of metrics.jsonl that log it"

    def compute(self, run: RunRecord) -> RunValue:
        rows = run.logged(self.field)
        if not rows and run.summary.get("diverged"):
            return RunValue(math.nan)  # it diverged before logging any: missing, not an error
        if not rows:
            fields = sorted({key for row in run.metrics for key in row})
            raise ValueError(
                f"measure {self.measure_label!r}: {run.describe()} logged no {self.field!r} in "
                f"metrics.jsonl (it logged {fields}); fix measures.field or add the callback "
                "that logs it"
            )
        what = f"measure {self.measure_label!r}: {self.field!r} of {run.describe()}"
        values = [as_number(row[self.field], what) for row in rows]
        return RunValue(REDUCERS[self.reduce](values))
