"""``run_field``: a column of ``results/runs.parquet`` (``experiment.results.run_summary``:
training seconds, parameter counts, anything a run's summary records)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from transferlab.config import MEASURES
from transferlab.experiment.measures.base import MeasureConfig, RunRecord, RunValue


@MEASURES.register("run_field")
class RunFieldConfig(MeasureConfig):
    name: Literal["run_field"] = "run_field"
    field: str = Field(min_length=1)

    def describe(self) -> str:
        return f"{self.field} from results/runs.parquet"

    def compute(self, run: RunRecord) -> RunValue:
        if self.field not in run.summary:
            raise ValueError(
                f"measure {self.measure_label!r}: results/runs.parquet has no column "
                f"{self.field!r}; choose one of {sorted(run.summary)}"
            )
        value = run.summary[self.field]
        return RunValue(float("nan") if value is None else float(value))
