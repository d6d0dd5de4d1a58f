"""``run_field``: a number a run's summary records: a column of ``results/runs.parquet``
(``experiment.results.run_summary``: training seconds, parameter counts, ...) or, for what only
the trainer records, a key of its ``run_info.json``; the runs table's column wins a tie."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from transferlab.config import MEASURES
from transferlab.experiment.measures.base import (
    MeasureConfig,
    RunRecord,
    RunValue,
    as_number,
)


@MEASURES.register("run_field")
class RunFieldConfig(MeasureConfig):
    name: Literal["run_field"] = "run_field"
    field: str = Field(min_length=1)  # a runs.parquet column, else a run_info.json key

    def describe(self) -> str:
        return f"{self.field} from results/runs.parquet or run_info.json"

    def compute(self, run: RunRecord) -> RunValue:
        fields = {**run.info, **run.summary}
        if self.field not in fields:
            raise ValueError(
                f"measure {self.measure_label!r}: {run.describe()} has no {self.field!r} in "
                f"results/runs.parquet or run_info.json; choose one of {sorted(fields)}"
            )
        what = f"measure {self.measure_label!r}: {self.field!r} of {run.describe()}"
        return RunValue(as_number(fields[self.field], what))
