"""``lr_sensitivity`` (Wortsman et al., 2023, "Small-scale proxies for large-scale Transformer
training instabilities"): over a learning-rate sweep (the axis ``over`` names), per remaining
variant and seed, ``mean over the swept levels of min(L(lr), L0) - L*``, with ``L(lr)`` the
final validation loss at that level, ``L0`` the loss at initialization and
``L* = min over levels of min(L(lr), L0)``, the best final loss of the sweep. Lower is better:
0 means every learning rate of the sweep reaches the best loss.

``L0`` is ``ln(vocab_size)``, the loss of the uniform prediction, because runs log no
validation loss at step 0. A freshly initialized model predicts nearly uniformly: its measured
validation loss was 0.006 (the tests' 1-layer, 32-wide model) to 0.04 (the tiny and micro
presets) nats above ``ln(vocab_size)``. ``L0`` only matters through the clip ``min(L, L0)``,
which binds for a run that ends no better than at initialization; a run whose final loss is
not finite (it diverged) counts as ``L0``, as in the paper.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from transferlab.config import MEASURES
from transferlab.experiment.measures.base import MeasureConfig, RunRecord, RunValue


@MEASURES.register("lr_sensitivity")
class LrSensitivityConfig(MeasureConfig):
    """the mean, over the learning rates of a sweep (the axis ``over``), of how far each final
    validation loss is above the sweep's best (Wortsman et al. 2023; lower is better).

    See the module docstring for the exact definition."""

    name: Literal["lr_sensitivity"] = "lr_sensitivity"

    sweep = True
    direction = False

    def describe(self) -> str:
        return f"mean over the levels of {self.over} of min(final val loss, ln V), minus their best"

    def compute(self, run: RunRecord) -> RunValue:
        """``min(L, L0)`` of one run of the sweep."""
        initial = math.log(run.config.model.vocab_size)
        final = float(run.validation_rows()[-1]["val_loss"])
        return RunValue(min(final, initial) if math.isfinite(final) else initial)

    def collapse(self, values: list[float]) -> float:
        return float(np.mean(values) - np.min(values))
