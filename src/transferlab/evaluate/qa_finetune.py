"""``qa_finetune``: the QA fine-tuning protocol of "Physics of Language Models, Part 3.1".

Fine-tune a copy of the pretrained model on the QA-train people's questions (sequence
``"<bos>question answer<eos>"``, loss on the answer and ``<eos>`` only), then, for the people of
``eval_splits`` (default the held-out QA-test people), generate greedily after the question until
``<eos>`` or ``max_new_tokens`` and score exact match. Evaluating on ``"train"`` measures
in-distribution accuracy on the fine-tuning questions themselves.

Declared metrics: ``correct`` is the exact match; ``p_correct`` is the fine-tuned model's
probability of the whole gold answer (its tokens and ``<eos>``, teacher-forced) after the
question, a continuous companion of exact match.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import nn

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import OPTIMIZERS, SCHEDULES, TASKS
from transferlab.config.schemas import OptimizerConfig, ScheduleConfig
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import QaTaskConfig, Subject, Task, require_bios
from transferlab.evaluate.finetune import FinetuneSettings, finetune, steps_for_epochs
from transferlab.evaluate.generate import greedy_generate
from transferlab.evaluate.lora import LORA_TARGETS
from transferlab.evaluate.metrics import ACCURACY, P_CORRECT, exact_match
from transferlab.evaluate.qa import encode_answer, encode_prompt, select_items
from transferlab.evaluate.results import ExampleResult
from transferlab.evaluate.score import score_choices


@TASKS.register("qa_finetune")
class QaFinetuneConfig(QaTaskConfig):
    name: Literal["qa_finetune"] = "qa_finetune"
    # A prefix LM generates causally after its prefix, and causal attention is its case of a
    # prefix of <bos> alone: it fine-tunes (answer_lm, causal) and generates as it was trained
    # to. A bidirectional model was never trained to generate.
    readings: ClassVar[tuple[str, ...]] = ("causal", "prefix")
    reading_limit: ClassVar[str] = "generates causally"
    method: Literal["full", "lora"] = "full"
    epochs: float = Field(default=10.0, gt=0)  # passes over the QA-train questions
    steps: int | None = Field(default=None, gt=0)  # when given, overrides epochs
    batch_size: int = Field(default=32, gt=0)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_fraction: float = Field(default=0.05, ge=0, lt=1)
    grad_clip: float | None = Field(default=1.0, gt=0)
    # Any registered optimizer / schedule; when given they replace lr, weight_decay, grad_clip
    # (AdamW) and warmup_fraction (cosine).
    optimizer: OPTIMIZERS.type(OptimizerConfig, default="adamw") | None = None
    schedule: SCHEDULES.type(ScheduleConfig, default="cosine") | None = None
    micro_batch_size: int | None = Field(default=None, gt=0)
    # In an experiment the fine-tuning logs and checkpoints in the evaluation's work directory,
    # so a killed evaluation resumes from its last checkpoint.
    log_interval: int = Field(default=10, gt=0)
    checkpoint_interval: int = Field(default=100, gt=0)
    lora_r: int = Field(default=8, gt=0)
    lora_alpha: float = Field(default=16.0, gt=0)
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS), min_length=1)
    max_new_tokens: int = Field(default=16, gt=0)
    eval_batch_size: int = Field(default=64, gt=0)
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        dataclasses.replace(ACCURACY, description="1 when the generated answer is the gold"),
        dataclasses.replace(P_CORRECT, description="probability of the whole gold answer"),
    )

    def build(self) -> QaFinetuneTask:
        return QaFinetuneTask(self)

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


class QaFinetuneTask(Task[QaFinetuneConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg = self.cfg
        world = require_bios(subject.world, cfg.task_name)
        train_items = select_items(world, ["train"], cfg.attribute_names)
        pairs = [
            (
                encode_prompt(subject.tokenizer, item.question),
                encode_answer(subject.tokenizer, item.answer, eos=True),
            )
            for item in train_items
        ]
        run_dir = None if self.work_dir is None else self.work_dir / "finetune"
        settings = cfg.settings(len(pairs))
        tuned = finetune(
            subject.model, pairs, settings, subject.seed, subject.tokenizer.special.pad, run_dir
        ).model
        if cfg.method == "lora":  # fold the adapters in: a plain model generates faster
            tuned = tuned.merge_and_unload()
        return self.evaluate(tuned, subject.tokenizer, world, subject.run_id)

    def evaluate(
        self, model: nn.Module, tokenizer: TextTokenizer, world: Any, run_id: str
    ) -> list[dict[str, Any]]:
        """Rows of greedy generation with exact match on ``eval_splits`` (no training)."""
        cfg = self.cfg
        items = select_items(world, cfg.eval_splits, cfg.attribute_names)
        prompts = [encode_prompt(tokenizer, item.question) for item in items]
        special = tokenizer.special
        generated = greedy_generate(
            model, prompts, special.eos, cfg.max_new_tokens, cfg.eval_batch_size
        )
        requests = [
            (prompt, [encode_answer(tokenizer, item.answer, eos=True)])
            for prompt, item in zip(prompts, items, strict=True)
        ]
        gold_logprobs = score_choices(model, requests, cfg.eval_batch_size, special.pad)
        rows = []
        for item, tokens, (logprob,) in zip(items, generated, gold_logprobs, strict=True):
            prediction = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            rows.append(
                ExampleResult(
                    run_id=run_id,
                    task=cfg.task_name,
                    example_id=item.id,
                    group=item.attribute,
                    split=item.split,
                    prediction=prediction,
                    target=item.answer,
                    metrics={
                        "correct": exact_match(prediction, item.answer),
                        "p_correct": math.exp(logprob),
                    },
                ).to_dict()
            )
        return rows
