"""The training engine: one loop for every stage that trains (pretraining, continued
pretraining, a task's fine-tuning, the curation reference model).

The engine owns what is hard to get right once: DDP, gradient accumulation, autocast, the
learning-rate schedule, gradient clipping, the NaN stop (it raises, or with ``on_divergence:
stop`` ends the run at that step as a diverged run), SIGINT/SIGTERM, exact resume. What
differs between stages plugs into it: a batch source (packed windows or task examples), an
objective (which makes each global step's Batch and computes its loss), an optimizer and
schedule, and callbacks on named hooks (validation, metrics log, checkpoints, progress, and
any registered extra such as downstream evaluation or stability signals).

Exactness is the design constraint. The objective's randomness is drawn on the whole global
batch from a generator seeded afresh from (seed, step); every rank builds the same global batch
and trains on its rows. With the batch source's position, optimizer state, RNG state and the
callbacks' state in a checkpoint, a resumed run repeats an uninterrupted one bit for bit on CPU,
and the micro batch size or the number of processes changes only the float rounding.

A model part whose loss needs a statistic of the whole global batch (a mixture of experts'
global-batch load balancing) is a ``models.parts.base.StepStatistics`` module; the step hands it
the sums over all micro batches and ranks before its forwards (``Engine.step_statistics``), so
such a loss too is the same with or without accumulation and DDP.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from transferlab.artifacts import CorruptArtifact
from transferlab.models.parts.base import StepStatistics
from transferlab.objectives import Batch, LossOutput, Objective
from transferlab.train.allocator import keep_freed_memory
from transferlab.train.batching import BatchPlan, local_micro_batches
from transferlab.train.checkpoint import latest_checkpoint, load_training_state, set_aside
from transferlab.train.device import autocast, autocast_dtype
from transferlab.train.distributed import DistContext
from transferlab.train.rng import capture_rng_state, restore_rng_state, seeded_generator
from transferlab.train.signals import StopRequest

log = logging.getLogger(__name__)


class BatchSource(Protocol):
    """Yields what the objective makes each global step's Batch from; its position is state."""

    def global_batch(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TrainingDiverged(RuntimeError):
    """The loss or gradient norm became NaN/inf; the diverged state was not checkpointed."""


@dataclass(frozen=True)
class LoopSettings:
    """What the loop itself needs to know (the rest belongs to the parts plugged into it)."""

    max_steps: int
    seed: int  # seeds the objective's per-step generator
    grad_clip: float | None = None
    precision: str = "auto"  # auto: bf16 autocast on CUDA, else fp32
    compile: bool = False
    label: str = "train"  # what the progress bar and log lines call this stage
    tokens_per_step: int | None = None  # input tokens per step, for throughput (None: targets)
    # raise: TrainingDiverged; stop: the run ends at that step as a finished, diverged run
    on_divergence: Literal["raise", "stop"] = "raise"


@dataclass(frozen=True)
class StepOutput:
    """One optimizer step, as the callbacks see it."""

    loss: float  # the main loss per target of the whole global batch
    grad_norm: float  # before clipping
    lr: float
    n_targets: int
    tokens: int
    metrics: dict[str, float] = field(default_factory=dict)  # aux losses and metrics per target
    # The loss or gradient norm was not finite: no optimizer step was taken (on_divergence: stop)
    diverged: bool = False


@dataclass
class EngineResult:
    steps: int  # optimizer steps completed (in all calls, for a resumed run)
    interrupted: bool  # stopped early by SIGINT/SIGTERM (or stop_after); resumable
    losses: list[float]  # the loss of every step run in this call
    # Ended at step ``steps``, whose loss or gradient was not finite (its optimizer step was not
    # taken: ``steps`` counts it, as the metrics row of that step does)
    diverged: bool = False


class Callback:
    """Work on the loop's named hooks; ``name`` keys the callback's state in a checkpoint.

    Hooks run in the order the callbacks were given. ``on_step_end`` may add fields to
    ``engine.row``, which the metrics log writes out (so validation runs before it). Most
    callbacks only record; one that changes the weights (a weight constraint) does it in
    ``on_optimizer_step``, so everything after it sees the weights the run really has.
    """

    name: str = "callback"
    # Runs the model on rank 0 alone while the others wait: impossible with sharded weights
    # (trainer.parallelism: fsdp), whose every forward gathers each block from all ranks
    main_process_only: bool = False

    def on_train_start(self, engine: Engine) -> None:
        """After the engine is built and restored, before the first step of this call."""

    def on_step_start(self, engine: Engine) -> None:
        """Before each optimizer step (``engine.step`` is the number of steps done so far)."""

    def on_optimizer_step(self, engine: Engine) -> None:
        """Right after ``optimizer.step()``, before the step's ``on_step_end`` hooks (so
        before validation, the metrics log and checkpoints); ``engine.step`` does not count
        the step yet. Every rank runs it on the same weights."""

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        """After each optimizer step; ``engine.step`` counts it already."""

    def on_diverged_step(self, engine: Engine, out: StepOutput) -> None:
        """Instead of ``on_step_end`` at the step whose loss or gradient norm was not finite,
        when the run stops there (``on_divergence: stop``): no optimizer step was taken and the
        run ends after it; ``engine.step`` counts it. Only what records the divergence acts."""

    def on_train_end(self, engine: Engine) -> None:
        """After the last step of this call (finished, interrupted or stopped)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint written by the same kind of callback."""


class Engine:
    """Trains ``model`` with ``objective`` on ``batches`` until ``max_steps`` or a stop."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        batches: BatchSource,
        optimizer: torch.optim.Optimizer,
        lr_multiplier: Callable[[int], float],
        plan: BatchPlan,
        settings: LoopSettings,
        dist: DistContext,
        callbacks: Sequence[Callback] = (),
        run_dir: Path | None = None,
    ) -> None:
        keep_freed_memory()  # once per process: a step's tensors reuse the heap (allocator.py)
        self.model = model
        self.objective = objective
        self.batches = batches
        self.optimizer = optimizer
        self.lr_multiplier = lr_multiplier
        self.plan = plan
        self.settings = settings
        self.dist = dist
        self.callbacks = list(callbacks)
        self.run_dir = run_dir
        self.step = 0
        self.tokens_seen = 0  # input tokens (or targets) trained on, in all calls
        self.elapsed_before = 0.0  # training seconds of earlier calls (for a resumed run)
        self.row: dict[str, Any] = {}  # fields callbacks add to this step's metrics row
        self.stopping = False  # True on the step at which this call ends early
        self.diverged = False  # True once a step's loss or gradient was not finite (stop)
        # The model's parts are fixed for the run, so which need step statistics is found once.
        self._statistics_modules = [
            m for m in model.modules() if isinstance(m, StepStatistics) and m.needs_step_statistics
        ]
        self.forward_model = torch.compile(model) if settings.compile else model
        self.ddp_model = dist.wrap(self.forward_model)
        self.amp_dtype = autocast_dtype(settings.precision, dist.device)
        self.started = time.perf_counter()

    @property
    def max_steps(self) -> int:
        return self.settings.max_steps

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def callback(self, kind: type[Callback]) -> Callback | None:
        """The first callback of ``kind``, or None."""
        return next((c for c in self.callbacks if isinstance(c, kind)), None)

    # ------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue exactly (weights are saved separately)."""
        return {
            "step": self.step,
            "tokens": self.tokens_seen,
            "elapsed_s": self.elapsed_s,
            "optimizer": self.optimizer.state_dict(),
            "loader": self.batches.state_dict(),
            "rng": capture_rng_state(),
            "callbacks": {c.name: c.state_dict() for c in self.callbacks},
        }

    def restore(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint`` (written by this kind of stage)."""
        state = load_training_state(checkpoint, self.model, self.optimizer, self.dist.device)
        self.batches.load_state_dict(state["loader"])
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        # Checkpoints from before the engine counted no tokens: every step had the same count.
        per_step = self.settings.tokens_per_step or 0
        self.tokens_seen = int(state.get("tokens", self.step * per_step))
        self.elapsed_before = float(state["elapsed_s"])
        saved = state.get("callbacks", {})
        for callback in self.callbacks:
            callback.load_state_dict(saved.get(callback.name, _legacy_state(state, callback)))
        log.info("resuming %s from step %d", checkpoint.parent.parent, self.step)

    def restore_newest(self, checkpoints: Sequence[Path]) -> Path:
        """Restore the newest of ``checkpoints`` (oldest first) that loads. The main process sets
        each newer, corrupt one aside, saying so; none loading is a one-line ``CorruptArtifact``.
        A failed restore leaves nothing behind: the next one overwrites every tensor and state."""
        for checkpoint in reversed(checkpoints):
            try:
                self.restore(checkpoint)
                return checkpoint
            except CorruptArtifact as exc:
                aside = set_aside(checkpoint) if self.dist.is_main else checkpoint
                log.warning("%s; moved it to %s and trying the checkpoint before it", exc, aside)
        root = checkpoints[-1].parent if checkpoints else self.run_dir
        raise CorruptArtifact(
            f"no checkpoint in {root} loads; delete that folder to train from step 0"
        )

    # ------------------------------------------------------------------------------ loop
    def run(self, stop_after: int | None = None) -> EngineResult:
        """Train until ``max_steps``; ``stop_after`` ends this call after that many steps as an
        interruption would (the schedule still spans ``max_steps``)."""
        end = self.max_steps if stop_after is None else min(self.max_steps, self.step + stop_after)
        self.started = time.perf_counter()
        losses: list[float] = []
        self.model.train()
        for callback in self.callbacks:
            callback.on_train_start(self)
        try:
            with StopRequest() as stop:
                while self.step < end:
                    for callback in self.callbacks:
                        callback.on_step_start(self)
                    out = self.train_step()
                    self.step += 1
                    self.tokens_seen += out.tokens
                    losses.append(out.loss)
                    if out.diverged:
                        self._end_diverged(out)
                        break
                    self.stopping = self.step < self.max_steps and (
                        self.dist.any(stop.requested) or self.step == end
                    )
                    self.row = {}
                    for callback in self.callbacks:
                        callback.on_step_end(self, out)
                    if self.stopping:
                        log.info("%s interrupted at step %d", self.settings.label, self.step)
                        break
        finally:
            for callback in self.callbacks:
                callback.on_train_end(self)
        return EngineResult(self.step, self.stopping, losses, self.diverged)

    def train_step(self) -> StepOutput:
        """One optimizer step on one global batch.

        Each micro batch's summed loss is scaled by ``world_size / n`` where ``n`` counts the
        targets of the whole global batch (all micro batches of all ranks), so after DDP
        averages gradients over ranks the gradient is that of the mean loss over all targets:
        the same with or without accumulation and DDP, up to float rounding.
        """
        lr = self._set_lr()
        generator = seeded_generator(self.settings.seed, "train", self.step)
        batch = self.objective.make_batch(self.batches.global_batch(), generator)
        n_targets = max(self.objective.n_targets(batch), 1)  # global: no collective needed
        scale = self.dist.world_size / n_targets
        micro_batches = local_micro_batches(batch, self.plan, self.dist.rank)
        sums: dict[str, torch.Tensor] = {}
        with self.step_statistics(micro_batches):
            for i, micro in enumerate(micro_batches):
                sync = i == len(micro_batches) - 1  # gradients are reduced on the last only
                with self.dist.gradient_sync(self.ddp_model, sync):
                    out = self.micro_loss(self.ddp_model, micro)
                    (out.total * scale).backward()
                _accumulate(sums, out)
        names = sorted(sums)
        totals = dict(
            zip(names, self.dist.reduce_sum(*(sums[n].item() for n in names)), strict=True)
        )
        loss = totals.pop("loss") / n_targets
        grad_norm = self._clip_gradients()
        tokens = self.settings.tokens_per_step or n_targets
        metrics = {name: value / n_targets for name, value in totals.items()}
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            if self.settings.on_divergence == "raise":
                raise self._diverged(loss, grad_norm, lr)
            self.optimizer.zero_grad(set_to_none=True)  # the weights stay those of the step before
            return StepOutput(loss, grad_norm, lr, n_targets, tokens, metrics, diverged=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        for callback in self.callbacks:
            callback.on_optimizer_step(self)
        return StepOutput(loss, grad_norm, lr, n_targets, tokens, metrics)

    def _end_diverged(self, out: StepOutput) -> None:
        """The step ``self.step`` diverged and the run stops there (``on_divergence: stop``):
        the callbacks record it (``on_diverged_step``); no checkpoint holds the diverged step."""
        self.diverged = True
        log.warning(
            "%s: %s at step %d; the run stops here as a diverged run (on_divergence: stop)",
            self.settings.label,
            _what_diverged(out.loss, out.grad_norm),
            self.step,
        )
        self.row = {}
        for callback in self.callbacks:
            callback.on_diverged_step(self, out)

    @contextmanager
    def step_statistics(self, micro_batches: Sequence[Batch]) -> Iterator[None]:
        """Within it, the model's ``StepStatistics`` modules (``models.parts.base``) hold their
        sums over the step's whole batch: this rank's ``micro_batches`` go forward once without
        gradients while the modules record, and the sums are added over all ranks in one
        collective. A step that is one micro batch on one process skips it (its forward sees
        the whole batch); any other step pays one gradient-free forward of its batch, about a
        third of the step's compute, and only when some module needs them."""
        modules = self._statistics_modules
        if not modules or (len(micro_batches) == 1 and not self.dist.enabled):
            yield
            return
        try:
            self._record_step_statistics(modules, micro_batches)
            yield
        finally:
            for module in modules:
                module.set_step_statistics(None)

    def _record_step_statistics(
        self, modules: list[StepStatistics], micro_batches: Sequence[Batch]
    ) -> None:
        for module in modules:
            module.start_recording()
        with torch.no_grad():
            for micro in micro_batches:
                self.micro_loss(self.model, micro)  # eager: the compiled model may not record
        local = [module.stop_recording() for module in modules]
        total = self.dist.reduce_sum(*torch.cat(local).tolist())
        sums = torch.tensor(total, dtype=torch.float64).split([len(s) for s in local])
        for module, module_sums in zip(modules, sums, strict=True):
            module.set_step_statistics(module_sums)

    def micro_loss(self, model: nn.Module, micro: Batch) -> LossOutput:
        """The objective's loss of one micro batch on this rank's device (autocast applies)."""
        device = self.dist.device
        micro = {name: tensor.to(device) for name, tensor in micro.items()}
        with autocast(device, self.amp_dtype):
            return self.objective.loss(model, micro)

    @torch.no_grad()
    def evaluate_loss(
        self, micro_batches: Sequence[Batch], across_ranks: bool = True
    ) -> float | None:
        """Mean main loss per target over ``micro_batches`` (this rank's share; all ranks
        together, or this rank's alone without ``across_ranks``: no collective, for work only
        the main process does), in eval mode, through the compiled model if there is one."""
        if not micro_batches:
            return None
        self.model.eval()
        total = sum(float(self.micro_loss(self.forward_model, m).sum) for m in micro_batches)
        self.model.train()
        count = sum(self.objective.n_targets(m) for m in micro_batches)
        if across_ranks:
            total, count = self.dist.reduce_sum(total, count)
        return total / count if count else None

    def _set_lr(self) -> float:
        """Set each group's lr to its base lr times the schedule at this (0-based) step."""
        multiplier = self.lr_multiplier(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * multiplier
        return self.optimizer.param_groups[0]["lr"]

    def _clip_gradients(self) -> float:
        """Clip to ``grad_clip`` (if set) and return the norm before clipping."""
        max_norm = self.settings.grad_clip or math.inf
        params = [p for p in self.model.parameters() if p.requires_grad]
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    def _diverged(self, loss: float, grad_norm: float, lr: float) -> TrainingDiverged:
        what = _what_diverged(loss, grad_norm)
        latest = self._latest_checkpoint()
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written"
        return TrainingDiverged(
            f"{self.settings.label}: {what} at step {self.step + 1}; {kept}; lower the "
            f"optimizer's lr (it was {lr:.3g} at this step) or raise the schedule's "
            "warmup_steps, and start a new run"
        )

    def _latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.run_dir) if self.run_dir is not None else None


def _what_diverged(loss: float, grad_norm: float) -> str:
    return f"gradient norm became {grad_norm}" if math.isfinite(loss) else f"loss became {loss}"


def _accumulate(sums: dict[str, torch.Tensor], out: LossOutput) -> None:
    """Add a micro batch's detached sums (main loss, aux losses, metrics) to ``sums``."""
    if "loss" in out.aux or "loss" in out.metrics:
        raise ValueError("an objective named an auxiliary loss or metric 'loss'; rename it")
    parts = {"loss": out.sum, **out.aux, **out.metrics}
    for name, value in parts.items():
        value = value.detach().double()
        sums[name] = sums[name] + value if name in sums else value


def _legacy_state(state: dict[str, Any], callback: Callback) -> dict[str, Any]:
    """Checkpoints written before callbacks kept the metrics meter under ``meter``."""
    return state.get("meter", {}) if callback.name == "metrics" else {}
