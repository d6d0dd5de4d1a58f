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
from transferlab.config.registry import TASKS
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import QaTaskConfig, Subject, Task, require_bios
from transferlab.evaluate.finetune import FinetuneTaskConfig, finetune
from transferlab.evaluate.generate import greedy_generate
from transferlab.evaluate.metrics import ACCURACY, P_CORRECT, exact_match
from transferlab.evaluate.qa import Direction, encode_answer, encode_prompt, select_items
from transferlab.evaluate.results import ExampleResult
from transferlab.evaluate.score import score_choices


@TASKS.register("qa_finetune")
class QaFinetuneConfig(QaTaskConfig, FinetuneTaskConfig):
    name: Literal["qa_finetune"] = "qa_finetune"
    # A prefix LM generates causally after its prefix, and causal attention is its case of a
    # prefix of <bos> alone: it fine-tunes (answer_lm, causal) and generates as it was trained
    # to. A bidirectional model was never trained to generate.
    readings: ClassVar[tuple[str, ...]] = ("causal", "prefix")
    reading_limit: ClassVar[str] = "generates causally"
    max_new_tokens: int = Field(default=16, gt=0)  # generation stops here or at <eos>
    eval_batch_size: int = Field(default=64, gt=0)  # prompts per forward when evaluating
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        dataclasses.replace(ACCURACY, description="1 when the generated answer is the gold"),
        dataclasses.replace(P_CORRECT, description="probability of the whole gold answer"),
    )

    def build(self) -> QaFinetuneTask:
        return QaFinetuneTask(self)

    def tuned_directions(self) -> tuple[Direction, ...]:
        """The directions of the QA-train people's questions it fine-tunes on."""
        return ("forward",)

    def evaluated_direction(self) -> Direction:
        """The direction of the questions it generates answers to."""
        return "forward"


class QaFinetuneTask(Task[QaFinetuneConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg = self.cfg
        world = require_bios(subject.world, cfg.task_name)
        train_items = [
            item
            for direction in cfg.tuned_directions()
            for item in select_items(
                world, ["train"], cfg.attribute_names, direction, populations=cfg.population_split
            )
        ]
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
        items = select_items(
            world,
            cfg.eval_splits,
            cfg.attribute_names,
            cfg.evaluated_direction(),
            populations=cfg.population_split,
        )
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
                    facets=world.facets(item.person_id),
                ).to_dict()
            )
        return rows
