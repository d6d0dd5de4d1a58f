"""The trace of the Hessian of the pretraining loss, a measure of flatness
(``trainer.callbacks: [{name: hessian_trace, every: 100, probes: 16, windows: 32}]``).

At the steps ``at`` names, every ``every`` steps, and always at the last step, Hutchinson's
estimate of tr(d^2 L / dw^2) (``analysis.flatness``) with its t interval over the probes, where L
is the run's objective's main loss per target (as ``val_loss``: no auxiliary losses) on the first
``windows`` held-out windows of each data domain (the windows ``domain_loss`` reads) and w the
trained model's parameters (``parameters: blocks``: only the transformer blocks', leaving out
the embedding, which is tied to the output head by default, and the final norm).

Why held-out windows: they are fixed (every measurement of a run, and every run of a variant,
differentiates the same loss), share no text with training, and are the loss the
``final_val_loss`` measure reads, so "the same pretraining loss" and "its curvature" are about one
function; reading the training stream instead would move the loader, which exact resume forbids.
At saturation, the regime of Liu et al. 2022, the training loss is this population loss; in a run
that memorizes its training text the two part and this is the curvature of the held-out one.

The loss is differentiated twice in eval mode (no dropout), in fp32 (autocast off), through the
eager model with the plain cross entropy and the math attention kernel
(``models.loss.twice_differentiable``). Logged in ``metrics.jsonl``: ``hessian_trace``,
``hessian_trace_low`` and ``hessian_trace_high`` (the ``level`` interval), ``hessian_trace_probes``
and ``hessian_trace_windows``. Cost per measurement: one forward and backward of the windows with
the graph kept, plus about two backward passes per probe.

The probes are drawn from generators seeded by (run seed, ``seed``, step, probe), and the
objective's inputs (mlm's masks) from one seeded by (run seed, "hessian_trace"): no global random
stream is read, the weights and gradients are untouched, so the training run is bit-identical
with or without the callback. Rank 0 measures (no collective); no state is kept, so a resumed
run measures the same weights with the same probes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import torch
from pydantic import Field, field_validator

from transferlab.analysis.flatness import TraceEstimate, hutchinson_trace
from transferlab.config.registry import CALLBACKS
from transferlab.config.schemas import CallbackConfig, RunConfig
from transferlab.models.loss import twice_differentiable
from transferlab.objectives import Batch
from transferlab.objectives.networks import transferred_model
from transferlab.train.callbacks.held_out import domain_micro_batches, require_held_out
from transferlab.train.engine import Callback, Engine, StepOutput
from transferlab.train.rng import derive_seed

FIELD = "hessian_trace"  # metrics.jsonl key of the estimate (and the prefix of the others)


@CALLBACKS.register("hessian_trace")
class HessianTraceConfig(CallbackConfig):
    name: Literal["hessian_trace"] = "hessian_trace"
    # steps between measurements (None: only the steps of ``at`` and the last step)
    every: int | None = Field(default=None, gt=0)
    at: list[int] = Field(default_factory=list)  # steps to measure at (the last step always is)
    probes: int = Field(default=16, ge=2)  # Rademacher probes per measurement (the interval's n)
    windows: int = Field(default=32, gt=0)  # held-out windows of data.seq_len per data domain
    # the parameters differentiated: all the model's, or the transformer blocks' alone
    parameters: Literal["all", "blocks"] = "all"
    seed: int = 0  # mixed with the run's seed and the step into the probes' seeds
    level: float = Field(default=0.95, gt=0, lt=1)  # confidence level of the logged interval

    @field_validator("at")
    @classmethod
    def _positive_steps(cls, at: list[int]) -> list[int]:
        if any(step < 1 for step in at):
            raise ValueError(f"at lists steps {at}; steps count from 1, give positive steps")
        return sorted(set(at))

    def check(self, run: RunConfig) -> None:
        require_held_out(run, "hessian_trace", "differentiate")
        late = [step for step in self.at if step > run.trainer.max_steps]
        if late:
            raise ValueError(
                f"hessian_trace callback: at lists steps {late} beyond trainer.max_steps="
                f"{run.trainer.max_steps}; drop them or train longer"
            )

    def measures_at(self, step: int, max_steps: int) -> bool:
        """Whether the callback measures after ``step``."""
        every = self.every is not None and step % self.every == 0
        return every or step in self.at or step == max_steps

    def build(self) -> HessianTraceCallback:
        return HessianTraceCallback(self)


class HessianTraceCallback(Callback):
    name = "hessian_trace"
    main_process_only = True

    def __init__(self, cfg: HessianTraceConfig) -> None:
        self.cfg = cfg
        self._held_out: list[Batch] | None = None

    def on_train_start(self, engine: Engine) -> None:
        if engine.run_dir is None:
            raise ValueError("the hessian_trace callback needs a run directory (it reads its data)")

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if not self.cfg.measures_at(engine.step, engine.max_steps) or not engine.dist.is_main:
            return
        if self._held_out is None:
            domains = domain_micro_batches(engine, self.cfg.windows, "hessian_trace")
            self._held_out = [micro for batches in domains.values() for micro in batches]
        if not self._held_out:
            return  # no domain holds a whole window (domain_micro_batches warned)
        estimate = self.measure(engine)
        engine.row |= {
            FIELD: estimate.trace,
            f"{FIELD}_low": estimate.low,
            f"{FIELD}_high": estimate.high,
            f"{FIELD}_probes": estimate.probes,
            f"{FIELD}_windows": sum(_rows(micro) for micro in self._held_out),
        }

    def measure(self, engine: Engine) -> TraceEstimate:
        """The estimate on the current weights, in eval mode and fp32."""
        model = transferred_model(engine.model)
        chosen = model.blocks if self.cfg.parameters == "blocks" else model
        params = [p for p in chosen.parameters() if p.requires_grad]
        seed = derive_seed(engine.settings.seed, "hessian_trace", self.cfg.seed, engine.step)
        engine.model.eval()
        try:
            with twice_differentiable(), torch.autocast(engine.dist.device.type, enabled=False):
                return hutchinson_trace(
                    self._terms(engine), params, self.cfg.probes, seed, self.cfg.level
                )
        finally:
            engine.model.train()

    def _terms(self, engine: Engine) -> Iterator[Callable[[], torch.Tensor]]:
        """One loss term per micro batch: its summed loss over all windows' targets, so the
        terms add up to the mean loss per target."""
        count = sum(engine.objective.n_targets(m) for m in self._held_out)
        device = engine.dist.device
        for micro in self._held_out:
            inputs = {name: tensor.to(device) for name, tensor in micro.items()}
            yield lambda inputs=inputs: engine.objective.loss(engine.model, inputs).sum / count


def _rows(batch: Batch) -> int:
    """The windows of a batch (every field's first dimension is the row)."""
    return next(iter(batch.values())).shape[0]
