"""The metrics log: one JSON row per logged step in ``metrics.jsonl`` (rank 0 writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlab.train.engine import Callback, Engine, StepOutput
from transferlab.train.metrics import IntervalMeter, MetricsLog


class MetricsLogCallback(Callback):
    """Writes a row every ``interval`` steps and whenever another callback added fields to the
    step's row (validation, stability signals). ``train_loss`` and ``tokens_per_s`` average the
    steps since the last row; the meter is part of a checkpoint, so a resumed run logs exactly
    the rows of an uninterrupted one. Without a path, rows are kept in ``rows`` only."""

    name = "metrics"

    def __init__(self, path: Path | None, interval: int, enabled: bool = True) -> None:
        self.log = MetricsLog(path, enabled=enabled) if path is not None else None
        self.interval = interval
        self.meter = IntervalMeter()
        self.rows: list[dict[str, Any]] = []

    def on_train_start(self, engine: Engine) -> None:
        if self.log is not None:
            if engine.step:
                self.log.truncate_after(engine.step)
            else:
                self.log.reset()  # drops rows of an attempt that saved no checkpoint
        self.meter.start_clock()

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        self.meter.add(out.loss, out.tokens)
        if engine.row or engine.step % self.interval == 0:
            self._write(engine, out)

    def on_diverged_step(self, engine: Engine, out: StepOutput) -> None:
        """The diverged step always gets its row, marked ``diverged: true``: its non-finite
        ``train_loss`` (the interval's mean, which the step's NaN/inf makes NaN/inf) or
        ``grad_norm`` is the record of what diverged."""
        self.meter.add(out.loss, out.tokens)
        engine.row["diverged"] = True
        self._write(engine, out)

    def _write(self, engine: Engine, out: StepOutput) -> None:
        row = {
            "step": engine.step,
            "tokens": engine.tokens_seen,
            "train_loss": self.meter.mean_loss(),
            "lr": out.lr,
            "grad_norm": out.grad_norm,
            "tokens_per_s": self.meter.tokens_per_s(),
            "elapsed_s": engine.elapsed_s,
            **out.metrics,
            **engine.row,
        }
        self.rows.append(row)
        if self.log is not None:
            self.log.append(row)
        self.meter.reset()

    def state_dict(self) -> dict[str, Any]:
        return self.meter.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.meter.load_state_dict(state)
