"""Fine-tuning on the engine: on (prompt, answer) pairs with the loss on the answer only
(``finetune``), or on any examples with another objective (``run_finetune``: a classification
head, ``classifier_head``).

The examples are the batch source, the objective (``answer_lm`` for pairs, see
``objectives.answer_lm``) makes each batch and ``train.engine`` runs the loop, so fine-tuning
has what pretraining has: any registered optimizer and schedule, gradient accumulation, the NaN
stop, metrics, and, given a run directory, checkpoints and exact resume. The model is copied
first: the caller's model is never touched.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from transferlab.artifacts import content_key, write_json_atomic
from transferlab.config import OPTIMIZERS, SCHEDULES, OptimizerConfig, ScheduleConfig
from transferlab.config.schemas import TaskConfig
from transferlab.evaluate.inference import model_device
from transferlab.evaluate.lora import LORA_TARGETS, add_lora
from transferlab.objectives import Objective
from transferlab.objectives.answer_lm import AnswerLM, Pair
from transferlab.optim import AdamWConfig, CosineConfig
from transferlab.train.batching import BatchPlan
from transferlab.train.callbacks import CheckpointCallback, MetricsLogCallback, ProgressCallback
from transferlab.train.checkpoint import latest_checkpoint, list_checkpoints
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Engine, LoopSettings

SETTINGS_FILE = "finetune.json"


@dataclass(frozen=True)
class FinetuneSettings:
    """How to fine-tune: ``steps`` optimizer steps of ``batch_size`` pairs, full weights or
    LoRA adapters. The optimizer is ``optimizer`` if given, else AdamW with ``lr``,
    ``weight_decay`` and ``grad_clip``; the schedule ``schedule`` if given, else linear warmup
    over ``warmup_fraction`` of the steps and cosine decay."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup_fraction: float = 0.0
    grad_clip: float | None = 1.0
    method: Literal["full", "lora"] = "full"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    optimizer: OptimizerConfig | None = None
    schedule: ScheduleConfig | None = None
    micro_batch_size: int | None = None  # None: the whole batch in one forward
    log_interval: int = 10
    checkpoint_interval: int = 100  # with a run directory
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def optimizer_config(self) -> OptimizerConfig:
        if self.optimizer is not None:
            return self.optimizer
        return AdamWConfig(lr=self.lr, weight_decay=self.weight_decay, grad_clip=self.grad_clip)

    def schedule_config(self) -> ScheduleConfig:
        if self.schedule is not None:
            return self.schedule
        warmup = min(round(self.warmup_fraction * self.steps), self.steps - 1)
        return CosineConfig(warmup_steps=warmup)

    def plan(self) -> BatchPlan:
        micro = self.micro_batch_size or self.batch_size
        if self.batch_size % micro:
            raise ValueError(f"micro_batch_size={micro} must divide batch_size={self.batch_size}")
        return BatchPlan(self.batch_size, micro, 1, self.batch_size // micro)

    def to_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["optimizer"] = self.optimizer_config().to_dict()
        fields["schedule"] = self.schedule_config().to_dict()
        return fields


class FinetuneTaskConfig(TaskConfig):
    """The fine-tuning fields of a task that fine-tunes (``qa_finetune``, ``text_finetune``):
    ``settings`` turns them into the ``FinetuneSettings`` of its training examples."""

    method: Literal["full", "lora"] = "full"  # train every weight, or LoRA adapters only
    epochs: float = Field(default=10.0, gt=0)  # passes over the training examples
    steps: int | None = Field(default=None, gt=0)  # when given, overrides epochs
    batch_size: int = Field(default=32, gt=0)  # training examples per step
    lr: float = Field(default=1e-3, gt=0)  # AdamW's peak learning rate
    weight_decay: float = Field(default=0.01, ge=0)  # AdamW's decoupled weight decay
    warmup_fraction: float = Field(default=0.05, ge=0, lt=1)  # steps of linear warmup (cosine)
    grad_clip: float | None = Field(default=1.0, gt=0)  # max global gradient norm; None: none
    # Any registered optimizer / schedule; when given they replace lr, weight_decay, grad_clip
    # (AdamW) and warmup_fraction (cosine).
    optimizer: OPTIMIZERS.type(OptimizerConfig, default="adamw") | None = None
    schedule: SCHEDULES.type(ScheduleConfig, default="cosine") | None = None  # None: cosine
    # examples per forward, accumulated to batch_size (must divide it); None: the whole batch
    micro_batch_size: int | None = Field(default=None, gt=0)
    # In an experiment the fine-tuning logs and checkpoints in the evaluation's work directory,
    # so a killed evaluation resumes from its last checkpoint.
    log_interval: int = Field(default=10, gt=0)
    checkpoint_interval: int = Field(default=100, gt=0)  # steps between checkpoints
    lora_r: int = Field(default=8, gt=0)  # the adapters' rank (method: lora)
    lora_alpha: float = Field(default=16.0, gt=0)  # adapter output scaled by lora_alpha / lora_r
    # the linear layers that get adapters, by module name (method: lora)
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS), min_length=1)

    def settings(self, n_pairs: int) -> FinetuneSettings:
        steps = self.steps or steps_for_epochs(self.epochs, n_pairs, self.batch_size)
        return FinetuneSettings(
            steps=steps,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_fraction=self.warmup_fraction,
            grad_clip=self.grad_clip,
            method=self.method,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_targets=tuple(self.lora_targets),
            optimizer=self.optimizer,
            schedule=self.schedule,
            micro_batch_size=self.micro_batch_size,
            log_interval=self.log_interval,
            checkpoint_interval=self.checkpoint_interval,
        )


@dataclass
class FinetuneResult:
    model: nn.Module  # the trained copy (a peft model, adapters unmerged, for LoRA)
    losses: list[float]  # training loss of each step run in this call
    metrics: list[dict[str, Any]]  # the metrics rows logged in this call


class FinetuneInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped fine-tuning; with a run directory it resumes from its checkpoint."""


class ExampleBatches:
    """Endless batches of examples (pairs, labelled sequences) from successive seeded
    permutations (a batch may span two epochs); the generator and the pending indices are its
    state, so a resume is exact."""

    def __init__(self, examples: Sequence[Any], batch_size: int, seed: int) -> None:
        self.examples = examples
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.pending: list[int] = []

    def global_batch(self) -> list[Any]:
        while len(self.pending) < self.batch_size:
            self.pending.extend(
                torch.randperm(len(self.examples), generator=self.generator).tolist()
            )
        rows, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
        return [self.examples[i] for i in rows]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "pending": torch.tensor(self.pending)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.pending = state["pending"].tolist()


def finetune(
    model: nn.Module,
    pairs: Sequence[Pair],
    settings: FinetuneSettings,
    seed: int,
    pad_id: int = 0,
    run_dir: Path | None = None,
    progress: bool = False,
) -> FinetuneResult:
    """Train a copy of ``model`` on ``pairs`` for ``settings.steps`` steps; seeded by ``seed``.

    With ``run_dir``, metrics go to ``run_dir/metrics.jsonl`` and checkpoints to
    ``run_dir/checkpoints``, and a call that finds a checkpoint of the same fine-tuning
    (settings, seed and pairs) continues from it exactly.
    """
    if not pairs:
        raise ValueError("finetune got no training pairs; the train split selects no examples")
    examples = {"pairs": content_key([[list(p), list(a)] for p, a in pairs])}
    trainable = trainable_copy(model, settings, seed)
    return run_finetune(
        trainable, AnswerLM(pad_id), pairs, settings, seed, examples, run_dir, progress
    )


def run_finetune(
    trainable: nn.Module,
    objective: Objective,
    examples: Sequence[Any],
    settings: FinetuneSettings,
    seed: int,
    identity: dict[str, Any],
    run_dir: Path | None = None,
    progress: bool = False,
) -> FinetuneResult:
    """Train ``trainable`` itself (a ``trainable_copy``, maybe with a head) on ``examples``
    with ``objective`` for ``settings.steps`` steps on the engine. ``identity`` names what is
    trained on beyond the settings and seed (a key of the examples, the heads): a checkpoint
    in ``run_dir`` is continued only when all of it is the same."""
    optimizer_cfg = settings.optimizer_config()
    engine = Engine(
        trainable,
        objective,
        ExampleBatches(examples, settings.batch_size, seed),
        optimizer_cfg.build(trainable),
        settings.schedule_config().build(settings.steps),
        settings.plan(),
        LoopSettings(
            max_steps=settings.steps,
            seed=seed,
            grad_clip=optimizer_cfg.grad_clip,
            precision=settings.precision,
            label="finetune",
        ),
        DistContext(0, 1, 0, model_device(trainable)),
        _callbacks(settings, run_dir, progress),
        run_dir,
    )
    if run_dir is not None:
        _resume_if_same(
            engine, Path(run_dir), {"settings": settings.to_dict(), "seed": seed, **identity}
        )
    result = engine.run()
    if result.interrupted:
        raise FinetuneInterrupted(f"fine-tuning interrupted at step {result.steps}")
    trainable.eval()
    return FinetuneResult(trainable, result.losses, engine.callback(MetricsLogCallback).rows)


def _callbacks(
    settings: FinetuneSettings, run_dir: Path | None, progress: bool
) -> list[MetricsLogCallback | CheckpointCallback | ProgressCallback]:
    metrics = None if run_dir is None else Path(run_dir) / "metrics.jsonl"
    return [
        MetricsLogCallback(metrics, settings.log_interval),
        CheckpointCallback(settings.checkpoint_interval, keep=1),
        ProgressCallback(progress),
    ]


def _resume_if_same(engine: Engine, run_dir: Path, identity: dict[str, Any]) -> None:
    """Restore the newest checkpoint in ``run_dir`` if it is of this very fine-tuning (the same
    ``identity``); a run directory of another one is refused rather than silently continued."""
    identity = json.loads(json.dumps(identity))  # as stored: tuples become lists
    marker = run_dir / SETTINGS_FILE
    latest = latest_checkpoint(run_dir)
    if latest is not None and marker.is_file():
        if json.loads(marker.read_text()) != identity:
            raise ValueError(
                f"{run_dir} holds checkpoints of another fine-tuning (other settings, seed or "
                "examples); give another run_dir or delete that one"
            )
        engine.restore_newest(list_checkpoints(run_dir))
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, identity)


def steps_for_epochs(epochs: float, n_pairs: int, batch_size: int) -> int:
    """Optimizer steps that show each pair ``epochs`` times (at least one step)."""
    return max(1, math.ceil(epochs * n_pairs / batch_size))


def trainable_copy(model: nn.Module, settings: FinetuneSettings, seed: int) -> nn.Module:
    """A copy of ``model`` to fine-tune: every weight trains, or (LoRA) fresh adapters only,
    drawn from ``seed`` without touching the caller's generator."""
    trainable = copy.deepcopy(model)
    if settings.method == "full":
        return trainable
    # LoRA's init draws from the global generator: seed it, then restore the caller's state.
    device = model_device(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return add_lora(trainable, settings.lora_r, settings.lora_alpha, settings.lora_targets)
