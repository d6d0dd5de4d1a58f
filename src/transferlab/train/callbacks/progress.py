"""The progress bar (steps, loss, tokens/s, ETA) on rank 0's interactive terminal."""

from __future__ import annotations

import time

from transferlab.train.engine import Callback, Engine, StepOutput
from transferlab.train.progress import TrainProgress, progress_enabled


class ProgressCallback(Callback):
    name = "progress"

    def __init__(self, requested: bool) -> None:
        self.requested = requested
        self.bar: TrainProgress | None = None

    def on_train_start(self, engine: Engine) -> None:
        show = progress_enabled(self.requested, engine.dist.is_main)
        self.bar = TrainProgress(engine.max_steps, engine.step, show, engine.settings.label)
        self.bar.__enter__()
        self.tokens, self.started = 0, time.perf_counter()

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        self.tokens += out.tokens
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(engine.step, out.loss, rate)

    def on_train_end(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
