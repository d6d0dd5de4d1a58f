"""``modular_answer``: how often the model answers an equation of the `modular` world right, on
one of its splits (train, validation or test).

Each equation ``a o b =`` is a ``p``-way choice among the residues: the context is ``<bos>``
and the prompt ``"12+5="``, each residue a single-token choice, scored by the run's reader
(log-likelihood for a causal model; all ``p`` choices share one forward). ``correct`` is 1 when
the gold residue scores highest (chance ``1/p``), ``p_correct`` the probability the model puts
on the gold among the residues, ``margin`` that minus the largest other residue's. Rows carry
the split, so train and test accuracy of one run never mix; ``example_id`` is the equation
(``"12+5"``), the same in every run of the world, so rows pair across variants and seeds.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import TASKS
from transferlab.config.schemas import TaskConfig, WorldConfig
from transferlab.evaluate.base import Subject, Task
from transferlab.evaluate.metrics import ACCURACY, MARGIN, P_CORRECT, choice_scores
from transferlab.evaluate.readers import READINGS
from transferlab.evaluate.results import ExampleResult
from transferlab.worlds.modular import ModularConfig, ModularWorld, Split, residue_token_ids


@TASKS.register("modular_answer")
class ModularAnswerConfig(TaskConfig):
    """Accuracy of the answer of the modular world's equations on one split."""

    name: Literal["modular_answer"] = "modular_answer"
    readings: ClassVar[tuple[str, ...]] = READINGS
    reading_limit: ClassVar[str] = "scores the residues by the model's token distribution"
    metrics: ClassVar[tuple[MetricSpec, ...]] = (ACCURACY, P_CORRECT, MARGIN)
    split: Split = (
        "test"  # whose equations are asked: train (seen in pretraining), validation, test
    )
    batch_size: int = Field(default=256, gt=0)  # equations per forward

    def check_world(self, world: WorldConfig) -> None:
        if not isinstance(world, ModularConfig):
            raise ValueError(
                f"task {self.task_name!r} asks the modular world's equations; got world "
                f"{world.name!r}, use world.name=modular"
            )

    def build(self) -> ModularAnswerTask:
        return ModularAnswerTask(self)


class ModularAnswerTask(Task[ModularAnswerConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg, world, tokenizer = self.cfg, subject.world, subject.tokenizer
        if not isinstance(world, ModularWorld):
            raise ValueError(
                f"task {cfg.task_name!r} asks the modular world's equations; got a "
                f"{type(world).__name__}, use world.name=modular"
            )
        residues = residue_token_ids(tokenizer, world.cfg.prime)
        choices = [[token] for token in residues]
        equations = world.equations[cfg.split]
        bos = tokenizer.special.bos
        requests = [([bos, *tokenizer.encode(eq.prompt)], choices) for eq in equations]
        logprobs = subject.reader.score_choices(
            subject.model, requests, tokenizer.special, cfg.batch_size
        )
        ones = [1] * len(residues)
        rows = []
        for eq, scores in zip(equations, logprobs, strict=True):
            scored = choice_scores(scores, eq.answer, n_chars=ones, n_tokens=ones)
            rows.append(
                ExampleResult(
                    run_id=subject.run_id,
                    task=cfg.task_name,
                    example_id=eq.id,
                    group=world.cfg.operation,
                    split=cfg.split,
                    prediction=str(scored.prediction),
                    target=str(eq.answer),
                    metrics={
                        "correct": scored.correct,
                        "p_correct": scored.p_correct,
                        "margin": scored.margin,
                    },
                ).to_dict()
            )
        return rows
