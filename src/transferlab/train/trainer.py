"""Pretraining (and continued pretraining) of a ``RunConfig`` on the engine.

This module builds the stage: the data, the model (initialized from ``cfg.seed``), the objective,
optimizer and schedule, the packed-window loader, the validation batches and the callbacks, in
the run directory ``trainer.out_dir/name``; ``train.engine`` runs the loop. Everything random is
seeded from ``cfg.seed``: the model's initialization (``torch.manual_seed`` before
``objective.build_networks``, the model and any networks of the objective's own), the loader's
order, and the objective's masks (the engine's per-step generator).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from transferlab.artifacts import write_json_atomic
from transferlab.config import ConfigError, RunConfig
from transferlab.data import PackedLoader, PreparedData, prepare_data
from transferlab.file_digests import file_sha256
from transferlab.models import count_parameters
from transferlab.objectives.context import text_context
from transferlab.objectives.tokens import model_vocab, run_tokenizer_json
from transferlab.optim import TrainingStateBytes, param_groups
from transferlab.train.batching import plan_batches
from transferlab.train.callbacks import (
    CheckpointCallback,
    MetricsLogCallback,
    ProgressCallback,
    TrainingStateCallback,
    ValidationCallback,
)
from transferlab.train.callbacks.validation import validation_set
from transferlab.train.checkpoint import list_checkpoints
from transferlab.train.device import autocast_dtype
from transferlab.train.distributed import DistContext, init_distributed
from transferlab.train.engine import Callback, Engine, LoopSettings, TrainingDiverged
from transferlab.train.init import data_config, initialize_from_parent
from transferlab.train.memory import check_memory
from transferlab.train.run_dir import RunDir, config_key, run_dir_of

log = logging.getLogger(__name__)

__all__ = [
    "TrainResult",
    "TrainingDiverged",
    "check_param_groups",
    "check_sharded_callbacks",
    "resolve_model_vocab",
    "train",
]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    steps: int  # optimizer steps completed (in all calls, for a resumed run)
    tokens: int  # input tokens trained on: steps * batch_size * seq_len
    train_loss: float | None  # loss of the last step run in this call (None if none ran)
    val_loss: float | None  # the last validation loss computed in this call
    params_total: int
    params_non_embedding: int
    flops_per_token: int  # training FLOPs (forward + backward) per token, objective's networks too
    interrupted: bool = False  # stopped early by SIGINT/SIGTERM (or stop_after); resumable
    checkpoint: Path | None = None  # the newest complete checkpoint
    optimizer_state_bytes: int | None = None  # None until a step has created the state
    # The step whose loss or gradient norm was not finite, where the run ended (on_divergence:
    # stop); None for a run that did not diverge
    diverged_step: int | None = None


def train(
    cfg: RunConfig,
    resume: bool = False,
    *,
    allow_changes: bool = False,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``cfg`` in ``trainer.out_dir/name`` (or continue it from its latest checkpoint;
    ``allow_changes`` lets the resumed config differ in ``RESUMABLE_TRAINER_FIELDS``).

    ``stop_after`` ends this call after that many steps as an interruption would (checkpoint,
    ``interrupted=True``); the learning-rate schedule still spans ``trainer.max_steps``.
    Under torchrun every process calls this; only rank 0 writes files.
    """
    dist = init_distributed(cfg.trainer.device, cfg.trainer.parallelism)
    try:
        return Pretraining(cfg, dist, resume, allow_changes).run(stop_after)
    finally:
        dist.close()


def check_param_groups(cfg: RunConfig) -> None:
    """Refuse ``optimizer.groups`` patterns that select no parameter of what ``cfg`` trains
    (its model, and the objective's own networks) before any data is prepared (on modules
    without storage: names do not depend on the vocabulary)."""
    if not cfg.optimizer.groups:
        return
    model_cfg = cfg.model.model_copy(update={"vocab_size": cfg.model.vocab_size or 1})
    with torch.device("meta"):
        model = cfg.objective.build_networks(model_cfg)
    try:
        param_groups(model, cfg.optimizer)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_sharded_callbacks(callbacks: list[Callback], dist: DistContext) -> None:
    """Refuse, before any step, a callback that runs the model on rank 0 alone when the
    weights are sharded (it would wait forever for the other ranks' shards)."""
    names = [c.name for c in callbacks if c.main_process_only]
    if dist.shards and names:
        raise ConfigError(
            f"trainer.callbacks {names} run the model on rank 0 alone, which sharded weights "
            "(trainer.parallelism: fsdp on several processes) cannot; use parallelism ddp for "
            "this run, or drop them and evaluate the finished run instead"
        )


def resolve_model_vocab(cfg: RunConfig, vocab_size: int) -> RunConfig:
    """Fill ``model.vocab_size`` from the tokenizer's ``vocab_size`` ids plus the tokens the
    objective adds (``objectives.tokens``); a larger explicit value (padding) is kept."""
    given, vocab_size = cfg.model.vocab_size, model_vocab(cfg.objective, vocab_size)
    if given is not None and given < vocab_size:
        raise ConfigError(
            f"model.vocab_size: got {given}; expected at least the {vocab_size} ids of the "
            "tokenizer and the objective's added tokens (or leave it unset)"
        )
    model = cfg.model.model_copy(update={"vocab_size": given or vocab_size})
    return cfg.model_copy(update={"model": model})


class Pretraining:
    """One process's pretraining stage: builds the engine's parts; ``run()`` trains."""

    def __init__(
        self, cfg: RunConfig, dist: DistContext, resume: bool, allow_changes: bool = False
    ) -> None:
        self.dist = dist
        check_param_groups(cfg)
        data = dist.main_first(lambda: prepare_data(data_config(cfg)))
        self.cfg = cfg = resolve_model_vocab(cfg, data.vocab_size)
        # Once: for a child it reads the parent's run_info.json (and maybe its checkpoints).
        self.key = config_key(cfg)
        self.plan = plan_batches(cfg.trainer, dist.world_size)
        shards = dist.world_size if dist.shards else 1
        check_memory(cfg, self.plan.micro_batch_size, dist.device, shards)  # before allocating
        self.run_dir = RunDir(run_dir_of(cfg))
        resume_from = self._checkpoint_to_resume(resume, allow_changes)
        dist.barrier()  # every rank has read the run dir before rank 0 rewrites its files

        torch.manual_seed(cfg.seed)
        model = cfg.objective.build_networks(cfg.model).to(dist.device)
        # Sharded (fsdp on several ranks) before the optimizer takes the parameters
        model = dist.shard(model, autocast_dtype(cfg.trainer.precision, dist.device))
        optimizer = cfg.optimizer.build(model)
        if resume_from is None:  # a resumed child continues from its own checkpoint instead
            initialize_from_parent(cfg, model, optimizer, data.tokenizer_path, dist.device)
        text = text_context(cfg, data.tokenizer_path) if cfg.objective.needs_text else None
        objective = cfg.objective.build(data.special, data.vocab_size, text)
        # Every rank reads the whole global batch and runs the objective on it, then trains on
        # its share: the objective's random draws then do not depend on the number of processes
        # (or the micro batch size), so DDP and accumulation reproduce a single-process run.
        loader = PackedLoader(
            data.train_folder(), cfg.data.seq_len, cfg.trainer.batch_size, seed=cfg.seed
        )
        self.validation_set = validation_set(cfg, data, objective, self.plan, dist)
        self.validation = ValidationCallback(self.validation_set, cfg.trainer.eval_interval)
        self.engine = Engine(
            model,
            objective,
            loader,
            optimizer,
            cfg.schedule.build(cfg.trainer.max_steps),
            self.plan,
            self._settings(),
            dist,
            self._callbacks(),
            self.run_dir.root,
        )
        if resume_from is not None:
            self.engine.restore_newest(list_checkpoints(self.run_dir.root))
        self.info = self._run_info(data)
        if dist.is_main:
            self._write_run_files(data)

    def _settings(self) -> LoopSettings:
        t = self.cfg.trainer
        return LoopSettings(
            max_steps=t.max_steps,
            seed=self.cfg.seed,
            grad_clip=self.cfg.optimizer.grad_clip,
            precision=t.precision,
            compile=t.compile,
            label="train",
            tokens_per_step=t.batch_size * self.cfg.data.seq_len,
            on_divergence=t.on_divergence,
        )

    def _callbacks(self) -> list[Callback]:
        """Validation and the configured extras add to the step's row before it is logged;
        the checkpoint comes after the log (it saves the meter of the next interval) and after
        the training state's size is recorded (so a resumable run has recorded it)."""
        t = self.cfg.trainer
        extras = [callback_cfg.build() for callback_cfg in t.callbacks]
        check_sharded_callbacks(extras, self.dist)
        return [
            self.validation,
            *extras,
            MetricsLogCallback(self.run_dir.metrics, t.log_interval, enabled=self.dist.is_main),
            TrainingStateCallback(self._record_training_state),
            CheckpointCallback(t.checkpoint_interval, t.keep_checkpoints, {"config_key": self.key}),
            ProgressCallback(t.progress),
        ]

    def _checkpoint_to_resume(self, resume: bool, allow_changes: bool) -> Path | None:
        if not resume:
            self.run_dir.check_fresh()
            return None
        latest = self.run_dir.latest_checkpoint()
        if latest is None:
            log.info("%s has no checkpoint to resume from; starting from step 0", self.run_dir.root)
            return None
        self.run_dir.check_resumable(self.cfg, allow_changes)
        return latest

    def _run_info(self, data: PreparedData) -> dict[str, Any]:
        params = count_parameters(self.cfg.model)
        return {
            "params_total": params.total,
            "params_embedding": params.embedding,
            "params_non_embedding": params.non_embedding,
            "flops_per_token": self.cfg.objective.flops_per_token(
                self.cfg.model, self.cfg.data.seq_len
            ),
            "tokens_per_step": self.engine.settings.tokens_per_step,
            "world_size": self.dist.world_size,
            "micro_batch_size": self.plan.micro_batch_size,
            "accumulation_steps": self.plan.accumulation_steps,
            "device": str(self.dist.device),
            "autocast": str(self.engine.amp_dtype) if self.engine.amp_dtype else None,
            "data_key": data.key,
            "config_key": self.key,
            # The domains val_loss covers and their weights (None: no validation)
            "validation": self.validation_set.describe() if self.validation_set else None,
            # Runs that read text with the same tokenizer (data.tokenizer_scope) share this.
            "tokenizer_sha256": file_sha256(data.tokenizer_path),
        }

    def _write_run_files(self, data: PreparedData) -> None:
        self.run_dir.write_config(self.cfg)
        self.run_dir.tokenizer.write_bytes(
            run_tokenizer_json(data.tokenizer_path, self.cfg.objective)
        )
        write_json_atomic(self.run_dir.run_info, self.info)

    def run(self, stop_after: int | None = None) -> TrainResult:
        result = self.engine.run(stop_after)
        if result.interrupted:
            log.info("continue with --resume")
        if result.diverged:
            self._record_divergence(result.steps)
        return TrainResult(
            run_dir=self.run_dir.root,
            steps=result.steps,
            tokens=self.engine.tokens_seen,
            train_loss=result.losses[-1] if result.losses else None,
            val_loss=self.validation.last,
            params_total=self.info["params_total"],
            params_non_embedding=self.info["params_non_embedding"],
            flops_per_token=self.info["flops_per_token"],
            interrupted=result.interrupted,
            checkpoint=self.run_dir.latest_checkpoint(),
            optimizer_state_bytes=self.info.get("optimizer_state_bytes"),
            diverged_step=result.steps if result.diverged else None,
        )

    def _record_divergence(self, step: int) -> None:
        """Mark the run finished as diverged at ``step`` in ``run_info.json``, after its last
        metrics row: an experiment then counts it as done and reuses it
        (``run_dir.diverged_step``)."""
        self.info.update(diverged=True, diverged_step=step)
        if self.dist.is_main:
            write_json_atomic(self.run_dir.run_info, self.info)

    def _record_training_state(self, sizes: TrainingStateBytes) -> None:
        """Add the training state's sizes in bytes to ``run_info.json``."""
        self.info.update(sizes.as_dict())
        if self.dist.is_main:
            write_json_atomic(self.run_dir.run_info, self.info)
