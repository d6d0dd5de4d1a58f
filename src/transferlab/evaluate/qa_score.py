"""``qa_score``: zero/few-shot multiple choice on the bios questions, by log-likelihood (by
pseudo-log-likelihood for a bidirectional model: see ``readers``).

Each question gets ``n_choices`` choices: the gold answer and distractors drawn (seeded per
example) from the attribute's values the world's corpus shows. The context is ``<bos>``, then
``n_shots`` shots ``"question answer"`` about the same attribute from other QA-train people, each
ended by a newline (or, where the tokenizer has no newline, the ``<eos><bos>`` document
boundary), then the question; a choice is scored as its continuation ``" " + value``. No context
or choice holds ``<unk>``: one that would is refused in one line, naming the example. Declared metrics: the scores of
``transferlab.evaluate.metrics`` (``CHOICE_METRICS``: ``correct`` = acc, ``acc_norm``,
``p_correct``, ``margin``, ``norm_p_correct``); ``prediction`` is the chosen value.

``build_requests`` exposes the token-level requests so a benchmark can time ``score_choices`` on
exactly the items this task scores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import TASKS
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import QaTaskConfig, Subject, Task, require_bios
from transferlab.evaluate.metrics import CHOICE_METRICS, choice_scores
from transferlab.evaluate.qa import (
    Direction,
    Question,
    answer_text,
    check_known,
    draw_choices,
    draw_shots,
    encode_answer,
    encode_context,
    example_rng,
    select_items,
)
from transferlab.evaluate.readers import READINGS
from transferlab.evaluate.results import ExampleResult
from transferlab.evaluate.score import Request
from transferlab.worlds.bios import BiosWorld

log = logging.getLogger(__name__)


@TASKS.register("qa_score")
class QaScoreConfig(QaTaskConfig):
    name: Literal["qa_score"] = "qa_score"
    readings: ClassVar[tuple[str, ...]] = READINGS
    n_choices: int = Field(default=8, ge=2)  # the gold answer and n_choices - 1 distractors
    n_shots: int = Field(default=0, ge=0)  # solved questions before each question
    batch_size: int = Field(default=64, gt=0)  # sequences (context + one choice) per forward
    metrics: ClassVar[tuple[MetricSpec, ...]] = CHOICE_METRICS
    # Which questions are asked: forward (person -> attribute, choices among the attribute's
    # values) or reverse (attribute -> person, choices among people: ``qa_reverse``).
    direction: ClassVar[Direction] = "forward"

    def build(self) -> QaScoreTask:
        return QaScoreTask(self)


@dataclass(frozen=True)
class ChoiceExample:
    """One multiple-choice question, as text and as a ``score_choices`` request."""

    item: Question
    choices: list[str]
    gold: int
    request: Request


def build_requests(
    cfg: QaScoreConfig, world: BiosWorld, tokenizer: TextTokenizer, seed: int
) -> list[ChoiceExample]:
    """The examples of ``cfg`` on ``world``; the same ``seed`` draws the same choices and shots."""
    direction, attributes = cfg.direction, cfg.attribute_names
    shot_pool = select_items(
        world, ["train"], attributes, direction, populations=cfg.population_split
    )
    examples = []
    for item in select_items(
        world, cfg.eval_splits, attributes, direction, populations=cfg.population_split
    ):
        pool, what = choice_pool(world, item, direction)
        choices, gold = draw_choices(
            pool, item.answer, what, cfg.n_choices, example_rng(seed, "choices", item.id)
        )
        shots = draw_shots(item, shot_pool, cfg.n_shots, example_rng(seed, "shots", item.id))
        context = encode_context(tokenizer, shots, item.question)
        check_known(tokenizer, context, cfg.task_name, f"the context of example {item.id}")
        encoded = [encode_answer(tokenizer, choice) for choice in choices]
        for choice, ids in zip(choices, encoded, strict=True):
            check_known(tokenizer, ids, cfg.task_name, f"choice {choice!r} of example {item.id}")
        request = (context, encoded)
        examples.append(ChoiceExample(item, choices, gold, request))
    return examples


def choice_pool(world: BiosWorld, item: Question, direction: Direction) -> tuple[list[str], str]:
    """What the choices of ``item`` are drawn from, and what they are: the values of its
    attribute the corpus shows (forward), or every person's full name (reverse)."""
    if direction == "forward":
        return world.corpus_values(item.attribute), item.attribute
    return world.full_names(), "full_name"


class QaScoreTask(Task[QaScoreConfig]):
    def __init__(self, cfg: QaScoreConfig) -> None:
        super().__init__(cfg)
        self.examples_per_s: float | None = None  # throughput of the last run's scoring

    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg = self.cfg
        world = require_bios(subject.world, cfg.task_name)
        examples = build_requests(cfg, world, subject.tokenizer, subject.seed)
        start = time.perf_counter()
        requests = [ex.request for ex in examples]
        logprobs = subject.reader.score_choices(
            subject.model, requests, subject.tokenizer.special, cfg.batch_size
        )
        self.examples_per_s = len(examples) / max(time.perf_counter() - start, 1e-9)
        log.info(
            "%s: %d examples at %.1f examples/s", cfg.task_name, len(examples), self.examples_per_s
        )
        return [
            _row(example, scores, subject.run_id, cfg.task_name, world).to_dict()
            for example, scores in zip(examples, logprobs, strict=True)
        ]


def _row(
    example: ChoiceExample, logprobs: list[float], run_id: str, task: str, world: BiosWorld
) -> ExampleResult:
    scores = choice_scores(
        logprobs,
        example.gold,
        n_chars=[len(answer_text(choice)) for choice in example.choices],
        n_tokens=[len(ids) for ids in example.request[1]],
    )
    item = example.item
    return ExampleResult(
        run_id=run_id,
        task=task,
        example_id=item.id,
        group=item.attribute,
        split=item.split,
        prediction=example.choices[scores.prediction],
        target=item.answer,
        metrics=scores.metrics(),
        facets=world.facets(item.person_id),
    )
