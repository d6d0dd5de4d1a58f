"""Validation loss per data domain (``trainer.callbacks: [{name: domain_loss, every: 100}]``).

Every ``every`` steps and at the last step, the first ``windows`` held-out windows of each data
domain (each real-text source's validation documents; a world or a ``data.path`` run is one
domain) go through the model in eval mode, without gradients, as the run's objective reads them.
Logged in ``metrics.jsonl``: ``val_loss_<domain>``, the domain's mean loss per target (the main
loss, as ``val_loss``: no auxiliary losses), and ``val_loss_domain_mean``, the unweighted mean of
those over the domains.

Beside the trainer's validation (which logs ``val_loss/<domain>`` on an equal share of its
``eval_batches * batch_size`` windows, ``callbacks.validation``), this reads each domain's own
number of windows on its own schedule. Rank 0 measures; the callback keeps no state (a resumed
run measures the same weights on the same windows).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from transferlab.config.registry import CALLBACKS
from transferlab.config.schemas import CallbackConfig, RunConfig
from transferlab.objectives import Batch
from transferlab.train.callbacks.held_out import domain_micro_batches, require_held_out
from transferlab.train.engine import Callback, Engine, StepOutput

DOMAIN_MEAN = "val_loss_domain_mean"


@CALLBACKS.register("domain_loss")
class DomainLossConfig(CallbackConfig):
    name: Literal["domain_loss"] = "domain_loss"
    every: int = Field(default=100, gt=0)  # steps between measurements (and the last step)
    windows: int = Field(default=64, gt=0)  # held-out windows of data.seq_len per domain

    def check(self, run: RunConfig) -> None:
        require_held_out(run, "domain_loss", "measure")

    def build(self) -> DomainLossCallback:
        return DomainLossCallback(self)


class DomainLossCallback(Callback):
    name = "domain_loss"
    main_process_only = True

    def __init__(self, cfg: DomainLossConfig) -> None:
        self.cfg = cfg
        self._held_out: dict[str, list[Batch]] | None = None

    def on_train_start(self, engine: Engine) -> None:
        if engine.run_dir is None:
            raise ValueError("the domain_loss callback needs a run directory (it reads its data)")

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if engine.step % self.cfg.every and engine.step != engine.max_steps:
            return
        if not engine.dist.is_main:
            return
        if self._held_out is None:
            self._held_out = domain_micro_batches(engine, self.cfg.windows, "domain_loss")
        # Only rank 0 measures, so no collective.
        losses = {
            d: engine.evaluate_loss(batches, across_ranks=False)
            for d, batches in self._held_out.items()
        }
        if losses:
            engine.row |= {f"val_loss_{d}": loss for d, loss in losses.items()}
            engine.row[DOMAIN_MEAN] = float(np.mean(list(losses.values())))
