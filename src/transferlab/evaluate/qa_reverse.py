"""The bios world's reverse questions as tasks: from attributes to the person.

``qa_reverse_score``: multiple choice among people ("Who was born on March 4, 1983?"; the gold
full name against ``n_choices - 1`` other corpus people's names), scored as ``qa_score`` scores
its choices (log-likelihood, or pseudo-log-likelihood for a bidirectional model); shots are
reverse questions of other QA-train people about the same attribute. Its forward counterpart is
``qa_score`` itself.

``qa_reverse_finetune``: ``qa_finetune`` fine-tuned on the QA-train people's questions of
``train_directions`` (default both: the reversal-curse protocol of Physics of Language Models
Part 3.2), then answering by greedy generation the questions of ``direction`` for the people of
``eval_splits``. Forward and reverse accuracy after the same fine-tuning are two entries of it,
``direction: forward`` and ``direction: reverse``: the fine-tuning is seeded and so the same in
both (it is trained twice).

Rows pair per fact: a reverse row's ``example_id`` is the fact's id, ``"<person_id>:<attribute>"``,
the same as the forward row of that person and attribute (``group`` is that attribute in both
directions, ``split`` the person's QA split), so a join on ``example_id`` of the forward and
reverse tasks pairs the two directions of each fact, and each task pairs its rows across
variants and seeds as every task does. The attributes a reverse question states are in the
world's ``reverse_qa_items()`` (``attributes``; ``reverse_qa.jsonl`` of a written world).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from transferlab.config.registry import TASKS
from transferlab.evaluate.qa import Direction
from transferlab.evaluate.qa_finetune import QaFinetuneConfig, QaFinetuneTask
from transferlab.evaluate.qa_score import QaScoreConfig, QaScoreTask


@TASKS.register("qa_reverse_score")
class QaReverseScoreConfig(QaScoreConfig):
    """Reverse questions (attributes -> person) as multiple choice among corpus people, scored
    as qa_score scores (its forward twin); rows pair with qa_score's per fact by example_id."""

    name: Literal["qa_reverse_score"] = "qa_reverse_score"
    direction: ClassVar[Direction] = "reverse"

    def build(self) -> QaScoreTask:
        return QaScoreTask(self)


@TASKS.register("qa_reverse_finetune")
class QaReverseFinetuneConfig(QaFinetuneConfig):
    """qa_finetune on the QA-train people's questions of train_directions (default forward and
    reverse), then exact match on the questions of one direction for the people of eval_splits."""

    name: Literal["qa_reverse_finetune"] = "qa_reverse_finetune"
    # the directions of the QA-train people's questions it fine-tunes on
    train_directions: list[Direction] = Field(
        default_factory=lambda: ["forward", "reverse"], min_length=1
    )
    direction: Direction = "reverse"  # the direction of the questions it answers

    @field_validator("train_directions")
    @classmethod
    def _each_once(cls, value: list[Direction]) -> list[Direction]:
        if len(set(value)) != len(value):
            raise ValueError(f"train_directions {value} repeats a direction; list each once")
        return value

    def build(self) -> QaFinetuneTask:
        return QaFinetuneTask(self)

    def tuned_directions(self) -> tuple[Direction, ...]:
        return tuple(self.train_directions)

    def evaluated_direction(self) -> Direction:
        return self.direction
