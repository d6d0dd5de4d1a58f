"""``final_val_loss``: the last validation loss a run logged (lower is better)."""

from __future__ import annotations

from typing import Literal

from transferlab.config import MEASURES
from transferlab.experiment.measures.base import MeasureConfig, RunRecord, RunValue


@MEASURES.register("final_val_loss")
class FinalValLossConfig(MeasureConfig):
    name: Literal["final_val_loss"] = "final_val_loss"

    direction = False

    def describe(self) -> str:
        return "the last validation loss the run logged"

    def compute(self, run: RunRecord) -> RunValue:
        return RunValue(float(run.validation_rows()[-1]["val_loss"]))
