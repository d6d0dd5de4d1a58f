"""The pretraining loop: data, model, objective and optimizer of a ``RunConfig``, trained with
gradient accumulation, optional DDP, periodic evaluation, metrics and checkpoints.

Exactness is the design constraint. Everything random is seeded from ``cfg.seed``: the model's
initialization (``torch.manual_seed`` before ``build_model``), the loader's order, and the
objective's masks, drawn on the global batch from a generator seeded afresh from (seed, step).
With the loader position, optimizer state and step in the checkpoint, a resumed run therefore
repeats an uninterrupted one bit for bit on CPU, and the micro batch size or the number of
processes changes only the float rounding.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from transferlab.artifacts import write_json_atomic
from transferlab.config import ConfigError, RunConfig
from transferlab.data import PackedLoader, PreparedData, prepare_data
from transferlab.models import build_model, count_parameters, flops_per_token
from transferlab.objectives import Batch
from transferlab.train.batching import local_micro_batches, plan_batches
from transferlab.train.checkpoint import load_train_state, load_weights, save_checkpoint
from transferlab.train.device import autocast, autocast_dtype
from transferlab.train.distributed import DistContext, init_distributed
from transferlab.train.init import initialize_from_parent
from transferlab.train.metrics import IntervalMeter, MetricsLog
from transferlab.train.progress import TrainProgress, progress_enabled
from transferlab.train.rng import capture_rng_state, restore_rng_state, seeded_generator
from transferlab.train.run_dir import RunDir, config_key, run_dir_of
from transferlab.train.signals import StopRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    steps: int  # optimizer steps completed (in all calls, for a resumed run)
    tokens: int  # input tokens trained on: steps * batch_size * seq_len
    train_loss: float | None  # loss of the last step run in this call (None if none ran)
    val_loss: float | None  # the last validation loss computed in this call
    params_total: int
    params_non_embedding: int
    flops_per_token: int  # training FLOPs (forward + backward) per token
    interrupted: bool = False  # stopped early by SIGINT/SIGTERM (or stop_after); resumable
    checkpoint: Path | None = None  # the newest complete checkpoint


class TrainingDiverged(RuntimeError):
    """The loss or gradient norm became NaN/inf; the diverged state was not checkpointed."""


def train(cfg: RunConfig, resume: bool = False, *, stop_after: int | None = None) -> TrainResult:
    """Train ``cfg`` in ``trainer.out_dir/name`` (or continue it from its latest checkpoint).

    ``stop_after`` ends this call after that many steps as an interruption would (checkpoint,
    ``interrupted=True``); the learning-rate schedule still spans ``trainer.max_steps``.
    Under torchrun every process calls this; only rank 0 writes files.
    """
    dist = init_distributed(cfg.trainer.device)
    try:
        return Trainer(cfg, dist, resume).run(stop_after)
    finally:
        dist.close()


def resolve_model_vocab(cfg: RunConfig, vocab_size: int) -> RunConfig:
    """Fill ``model.vocab_size`` from the tokenizer; a larger explicit value (padding) is kept."""
    given = cfg.model.vocab_size
    if given is not None and given < vocab_size:
        raise ConfigError(
            f"model.vocab_size: got {given}; expected at least the tokenizer's {vocab_size} ids "
            "(or leave it unset)"
        )
    model = cfg.model.model_copy(update={"vocab_size": given or vocab_size})
    return cfg.model_copy(update={"model": model})


class Trainer:
    """One training process; ``run()`` trains until ``max_steps``, a stop request or divergence."""

    def __init__(self, cfg: RunConfig, dist: DistContext, resume: bool) -> None:
        self.dist = dist
        data = dist.main_first(lambda: prepare_data(cfg))
        self.cfg = cfg = resolve_model_vocab(cfg, data.vocab_size)
        self.plan = plan_batches(cfg.trainer, dist.world_size)
        self.run_dir = RunDir(run_dir_of(cfg))
        resume_from = self._checkpoint_to_resume(resume)
        dist.barrier()  # every rank has read the run dir before rank 0 rewrites its files

        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model).to(dist.device)
        self.optimizer = cfg.optimizer.build(self.model)
        if resume_from is None:  # a resumed child continues from its own checkpoint instead
            initialize_from_parent(
                cfg, self.model, self.optimizer, data.tokenizer_path, dist.device
            )
        self.lr_multiplier = cfg.schedule.build(cfg.trainer.max_steps)
        self.objective = cfg.objective.build(data.special, data.vocab_size)
        # Every rank reads the whole global batch and runs the objective on it, then trains on
        # its share: the objective's random draws then do not depend on the number of processes
        # (or the micro batch size), so DDP and accumulation reproduce a single-process run.
        self.loader = PackedLoader(
            data.train_folder(), cfg.data.seq_len, cfg.trainer.batch_size, seed=cfg.seed
        )
        self.val_batches = self._validation_batches(data)
        self.meter = IntervalMeter()
        self.step = 0
        self.elapsed_before = 0.0  # training seconds of earlier calls (for a resumed run)
        self.last_loss: float | None = None
        self.last_val: float | None = None
        if resume_from is not None:
            self._restore(resume_from)

        self.forward_model = torch.compile(self.model) if cfg.trainer.compile else self.model
        self.ddp_model = dist.wrap(self.forward_model)
        self.amp_dtype = autocast_dtype(cfg.trainer.precision, dist.device)
        self.metrics = MetricsLog(self.run_dir.metrics, enabled=dist.is_main)
        self.info = self._run_info(data)
        if dist.is_main:
            self._write_run_files(data, resumed=resume_from is not None)

    # ------------------------------------------------------------------------------ setup
    def _checkpoint_to_resume(self, resume: bool) -> Path | None:
        if not resume:
            self.run_dir.check_fresh()
            return None
        latest = self.run_dir.latest_checkpoint()
        if latest is None:
            log.info("%s has no checkpoint to resume from; starting from step 0", self.run_dir.root)
            return None
        self.run_dir.check_resumable(self.cfg)
        return latest

    def _validation_batches(self, data: PreparedData) -> list[Batch]:
        """Up to ``eval_batches * batch_size`` validation windows in stream order, as micro
        batches of this rank's share; the objective's randomness is seeded once, so every
        evaluation sees exactly the same inputs and targets."""
        t, folder = self.cfg.trainer, data.val_folder()
        if folder is None or t.eval_batches == 0:
            return []
        n_windows = max(folder.n_tokens - 1, 0) // self.cfg.data.seq_len  # as PackedLoader cuts
        rows = min(t.eval_batches * t.batch_size, n_windows)
        rows -= rows % self.dist.world_size
        if rows == 0:
            log.warning("validation data holds no full window of seq_len tokens; no val loss")
            return []
        window = PackedLoader(folder, self.cfg.data.seq_len, rows).fixed_batches(1)[0]
        batch = self.objective.make_batch(window, seeded_generator(self.cfg.seed, "eval"))
        return local_micro_batches(batch, self.plan, self.dist.rank)

    def _restore(self, checkpoint: Path) -> None:
        load_weights(checkpoint, self.model, device=self.dist.device)
        state = load_train_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.meter.load_state_dict(state["meter"])
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        self.elapsed_before = float(state["elapsed_s"])
        log.info("resuming %s from step %d", self.run_dir.root, self.step)

    def _run_info(self, data: PreparedData) -> dict[str, Any]:
        params = count_parameters(self.cfg.model)
        return {
            "params_total": params.total,
            "params_embedding": params.embedding,
            "params_non_embedding": params.non_embedding,
            "flops_per_token": flops_per_token(self.cfg.model, self.cfg.data.seq_len),
            "tokens_per_step": self.tokens_per_step,
            "world_size": self.dist.world_size,
            "micro_batch_size": self.plan.micro_batch_size,
            "accumulation_steps": self.plan.accumulation_steps,
            "device": str(self.dist.device),
            "autocast": str(self.amp_dtype) if self.amp_dtype else None,
            "data_key": data.key,
            "config_key": config_key(self.cfg),
        }

    def _write_run_files(self, data: PreparedData, resumed: bool) -> None:
        self.run_dir.write_config(self.cfg)
        shutil.copyfile(data.tokenizer_path, self.run_dir.tokenizer)
        write_json_atomic(self.run_dir.run_info, self.info)
        if resumed:
            self.metrics.truncate_after(self.step)
        else:
            self.metrics.reset()

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.trainer.batch_size * self.cfg.data.seq_len

    # ------------------------------------------------------------------------------ loop
    def run(self, stop_after: int | None = None) -> TrainResult:
        max_steps = self.cfg.trainer.max_steps
        end = max_steps if stop_after is None else min(max_steps, self.step + stop_after)
        show = progress_enabled(self.cfg.trainer.progress, self.dist.is_main)
        self.started = time.perf_counter()
        self.meter.start_clock()
        interrupted = False
        with StopRequest() as stop, TrainProgress(max_steps, self.step, show) as bar:
            while self.step < end:
                loss, grad_norm, lr = self._train_step()
                self.step += 1
                self.last_loss = loss
                self.meter.add(loss, self.tokens_per_step)
                interrupted = self.step < max_steps and (
                    self.dist.any(stop.requested) or self.step == end
                )
                self._after_step(lr, grad_norm, interrupted)
                bar.update(self.step, loss, self.meter.tokens_per_s())
                if interrupted:
                    log.info("interrupted at step %d; continue with --resume", self.step)
                    break
        return self._result(interrupted)

    def _after_step(self, lr: float, grad_norm: float, interrupted: bool) -> None:
        """Evaluate, log and checkpoint as the intervals ask; an interruption adds a checkpoint
        and changes nothing else, so a resumed run logs exactly the rows of an uninterrupted one."""
        t, step = self.cfg.trainer, self.step
        last = step == t.max_steps
        evaluate = step % t.eval_interval == 0 or last
        if evaluate:
            self.last_val = self.evaluate()
        if evaluate or step % t.log_interval == 0:
            self._log_row(lr, grad_norm, self.last_val if evaluate else None)
        if interrupted or last or step % t.checkpoint_interval == 0:
            self.write_checkpoint()

    def _train_step(self) -> tuple[float, float, float]:
        """One optimizer step; returns (loss, grad norm, lr).

        Each micro batch's summed token loss is scaled by ``world_size / n`` where ``n`` counts
        the loss tokens of the whole global batch (all micro batches of all ranks), so after DDP
        averages gradients over ranks the gradient is that of the mean loss over all loss
        tokens: the same with or without accumulation and DDP, up to float rounding.
        """
        lr = self._set_lr()
        gen = seeded_generator(self.cfg.seed, "train", self.step)
        batch = self.objective.make_batch(self.loader.global_batch(), gen)
        n_loss_tokens = max(
            self.objective.n_targets(batch), 1
        )  # of the global batch: no collective needed
        scale = self.dist.world_size / n_loss_tokens
        micro_batches = local_micro_batches(batch, self.plan, self.dist.rank)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.dist.device)
        for i, micro in enumerate(micro_batches):
            sync = i == len(micro_batches) - 1  # DDP all-reduces gradients on the last one only
            with nullcontext() if sync or not self.dist.enabled else self.ddp_model.no_sync():
                token_loss = self._loss_sum(self.ddp_model, micro)
                (token_loss * scale).backward()
            loss_sum += token_loss.detach()
        (total,) = self.dist.reduce_sum(loss_sum.item())
        loss = total / n_loss_tokens
        grad_norm = self._clip_gradients()
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise self._diverged(loss, grad_norm, lr)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, grad_norm, lr

    def _set_lr(self) -> float:
        """Set each group's lr to its base lr times the schedule at this (0-based) step."""
        multiplier = self.lr_multiplier(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * multiplier
        return self.optimizer.param_groups[0]["lr"]

    def _loss_sum(self, model: torch.nn.Module, micro: Batch) -> torch.Tensor:
        """The objective's summed loss over the targets of ``micro`` (fp32 even under autocast)."""
        device = self.dist.device
        micro = {name: tensor.to(device) for name, tensor in micro.items()}
        with autocast(device, self.amp_dtype):
            loss = self.objective.loss(model, micro).total
        return loss.float()

    def _clip_gradients(self) -> float:
        """Clip to ``optimizer.grad_clip`` (if set) and return the norm before clipping."""
        max_norm = self.cfg.optimizer.grad_clip or math.inf
        return float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))

    def _diverged(self, loss: float, grad_norm: float, lr: float) -> TrainingDiverged:
        what = f"gradient norm became {grad_norm}" if math.isfinite(loss) else f"loss became {loss}"
        latest = self.run_dir.latest_checkpoint()
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written"
        return TrainingDiverged(
            f"{what} at step {self.step + 1}; {kept}; lower optimizer.lr (lr was {lr:.3g} at "
            "this step) or raise schedule.warmup_steps, and start a new run"
        )

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean loss per loss token on the fixed validation batches (all ranks together)."""
        if not self.val_batches:
            return None
        self.model.eval()
        total = sum(float(self._loss_sum(self.forward_model, m)) for m in self.val_batches)
        self.model.train()
        count = sum(self.objective.n_targets(m) for m in self.val_batches)
        total, count = self.dist.reduce_sum(total, count)
        return total / count if count else None

    # ------------------------------------------------------------------------------ outputs
    @property
    def elapsed_s(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def _log_row(self, lr: float, grad_norm: float, val_loss: float | None) -> None:
        row = {
            "step": self.step,
            "tokens": self.step * self.tokens_per_step,
            "train_loss": self.meter.mean_loss(),
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_s": self.meter.tokens_per_s(),
            "elapsed_s": self.elapsed_s,
        }
        if val_loss is not None:
            row["val_loss"] = val_loss
        self.metrics.append(row)
        self.meter.reset()

    def write_checkpoint(self) -> None:
        """Rank 0 writes; the barriers keep the other ranks from running ahead or exiting first."""
        self.dist.barrier()
        if self.dist.is_main:
            state = {
                "step": self.step,
                "elapsed_s": self.elapsed_s,
                "optimizer": self.optimizer.state_dict(),
                "loader": self.loader.state_dict(),
                "meter": self.meter.state_dict(),
                "rng": capture_rng_state(),
            }
            meta = {
                "tokens": self.step * self.tokens_per_step,
                "config_key": self.info["config_key"],
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "elapsed_s": state["elapsed_s"],
                "train_loss": self.last_loss,
                "world_size": self.dist.world_size,
            }
            keep = self.cfg.trainer.keep_checkpoints
            save_checkpoint(self.run_dir.root, self.step, self.model, state, meta, keep)
        self.dist.barrier()

    def _result(self, interrupted: bool) -> TrainResult:
        return TrainResult(
            run_dir=self.run_dir.root,
            steps=self.step,
            tokens=self.step * self.tokens_per_step,
            train_loss=self.last_loss,
            val_loss=self.last_val,
            params_total=self.info["params_total"],
            params_non_embedding=self.info["params_non_embedding"],
            flops_per_token=self.info["flops_per_token"],
            interrupted=interrupted,
            checkpoint=self.run_dir.latest_checkpoint(),
        )
