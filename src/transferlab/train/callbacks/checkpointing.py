"""Checkpoints every ``interval`` steps, at the last step and when a run is interrupted; a run
of 0 steps (``trainer.max_steps: 0``) saves its initialization as checkpoint 0."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from transferlab.train.checkpoint import save_checkpoint, save_sharded_checkpoint
from transferlab.train.engine import Callback, Engine, StepOutput


class CheckpointCallback(Callback):
    """Rank 0 writes ``checkpoints/step_XXXXXXXX`` atomically and keeps the newest ``keep``
    (with sharded weights every rank writes its shards into it first); the barriers keep the
    other ranks from running ahead or exiting first. ``meta`` adds the
    stage's own fields (its config key) to every checkpoint's meta.json.

    It runs after the metrics log, so the saved meter has already started the next interval.
    """

    name = "checkpoint"

    def __init__(self, interval: int, keep: int, meta: dict[str, Any] | None = None) -> None:
        self.interval = interval
        self.keep = keep
        self.meta = meta or {}

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        step = engine.step
        if engine.stopping or step == engine.max_steps or step % self.interval == 0:
            self.write(engine, out)

    def on_train_end(self, engine: Engine) -> None:
        if engine.max_steps == 0 and engine.step == 0:  # no step ended: nothing wrote one yet
            self.write(engine, None)

    def write(self, engine: Engine, out: StepOutput | None) -> None:
        if engine.run_dir is None:
            return
        engine.dist.barrier()
        if engine.dist.shards:  # every rank writes its shards (the last step the whole weights)
            state = engine.state_dict()
            save_sharded_checkpoint(
                engine.run_dir,
                engine.step,
                engine.model,
                engine.optimizer,
                state,
                self._meta(engine, state, out),
                self.keep,
                engine.dist,
                with_weights=engine.step == engine.max_steps,
            )
        elif engine.dist.is_main:
            state = engine.state_dict()
            meta = self._meta(engine, state, out)
            save_checkpoint(engine.run_dir, engine.step, engine.model, state, meta, self.keep)
        engine.dist.barrier()

    def _meta(
        self, engine: Engine, state: dict[str, Any], out: StepOutput | None
    ) -> dict[str, Any]:
        return {
            **self.meta,
            "tokens": engine.tokens_seen,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "elapsed_s": state["elapsed_s"],
            "train_loss": None if out is None else out.loss,
            "world_size": engine.dist.world_size,
        }
