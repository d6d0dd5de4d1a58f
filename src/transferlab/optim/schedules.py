"""Learning-rate schedules: a pure multiplier of the base lr as a function of the 0-based step.

Being pure functions of the step, schedules carry no state, so a resumed run follows the same
learning rates as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from transferlab.config.registry import SCHEDULES
from transferlab.config.schemas import ScheduleConfig

LrMultiplier = Callable[[int], float]


def _warmup(step: int, warmup_steps: int) -> float:
    """Linear warmup reaching 1.0 on the last warmup step; 1.0 afterwards."""
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0


@SCHEDULES.register("constant")
class ConstantConfig(ScheduleConfig):
    """Linear warmup, then the full learning rate to the last step."""

    name: Literal["constant"] = "constant"

    def build(self, max_steps: int) -> LrMultiplier:
        self.check(max_steps)
        return lambda step: _warmup(step, self.warmup_steps)


@SCHEDULES.register("cosine")
class CosineConfig(ScheduleConfig):
    """Linear warmup, then cosine decay from 1 to ``min_lr_ratio`` at the last step."""

    name: Literal["cosine"] = "cosine"
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)  # the last step's lr, as a share of lr

    def build(self, max_steps: int) -> LrMultiplier:
        self.check(max_steps)
        decay_steps = max(1, max_steps - 1 - self.warmup_steps)

        def multiplier(step: int) -> float:
            if step < self.warmup_steps:
                return _warmup(step, self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / decay_steps)
            cosine = 0.5 * (1 + math.cos(math.pi * progress))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine

        return multiplier


@SCHEDULES.register("wsd")
class WarmupStableDecayConfig(ScheduleConfig):
    """Warmup, a constant plateau, then a linear decay over the last ``decay_fraction`` of steps."""

    name: Literal["wsd"] = "wsd"
    decay_fraction: float = Field(default=0.2, gt=0, le=1)  # share of max_steps that decays
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)  # the lr decayed to, as a share of lr

    def build(self, max_steps: int) -> LrMultiplier:
        self.check(max_steps)
        decay_steps = max(1, round(self.decay_fraction * max_steps))
        decay_start = max(self.warmup_steps, max_steps - decay_steps)

        def multiplier(step: int) -> float:
            if step < self.warmup_steps:
                return _warmup(step, self.warmup_steps)
            if step < decay_start:
                return 1.0
            progress = min(1.0, (step - decay_start + 1) / (max_steps - decay_start))
            return 1.0 - (1.0 - self.min_lr_ratio) * progress

        return multiplier
