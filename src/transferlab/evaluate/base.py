"""What every downstream task shares: the ``Task`` interface and the common config fields."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer
from torch import nn

from transferlab.config.schemas import TaskConfig
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.readers import Reader, as_reader, reading_error
from transferlab.worlds.bios import ATTRIBUTES, FACETS, BiosConfig, BiosWorld
from transferlab.worlds.bios_populations import PopulationSplit

Split = Literal["train", "test"]


C = TypeVar("C", bound=TaskConfig)


@dataclass(frozen=True)
class Subject:
    """The model a task evaluates and what the task reads it with."""

    model: nn.Module  # left unchanged by the task
    tokenizer: TextTokenizer
    world: Any  # None for tasks on real data (``TaskConfig.uses_world = False``)
    run_id: str  # names the rows, so they pair across variants and seeds
    seed: int  # the run's seed: draws choices and shots the same way for every variant
    reader: Reader  # how the model is read (its objective's attention)
    # The run's directory, where a task finds what the model was trained on (its config, its
    # data stage: ``train.trained_texts``); None for a model given without one.
    run_dir: Path | None = None


@dataclass(frozen=True)
class TaskNote:
    """A count about one evaluation as a whole rather than one example (say, the documents of a
    group left out because the model trained on them), shown beside the task's results."""

    name: str
    group: str
    value: float
    description: str  # what is counted, for the report: "held-out documents left out ..."


class Task(ABC, Generic[C]):
    """A downstream evaluation of one pretrained model, built from its config."""

    def __init__(self, cfg: C) -> None:
        self.cfg = cfg
        # Where a task that trains (fine-tuning) keeps its checkpoints and metrics so a killed
        # evaluation resumes; the executor sets it, None trains in memory only.
        self.work_dir: Path | None = None
        # What the last ``run`` noted about the evaluation as a whole; the executor keeps it.
        self.notes: list[TaskNote] = []

    def run(
        self,
        model: nn.Module,
        tokenizer: TextTokenizer,
        world: Any,
        run_id: str,
        seed: int,
        reading: str | Reader = "causal",
        run_dir: Path | None = None,
    ) -> list[dict[str, Any]]:
        """One result row (``ExampleResult.to_dict()``) per example; ``model`` is left unchanged.

        ``reading``: how the objective that trained ``model`` has it read (a run config's
        ``objective.reading``), or a ``Reader``; a task that cannot read it says so first.
        ``run_dir``: the directory of the run that trained ``model``, if there is one. What the
        task notes about the evaluation as a whole is in ``self.notes`` afterwards.
        """
        reader = as_reader(reading)
        problem = reading_error(self.cfg, reader.reading)
        if problem:
            raise ValueError(problem)
        self.notes = []
        return self.read(Subject(model, tokenizer, world, run_id, seed, reader, run_dir))

    @abstractmethod
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        """``run`` once the task knows it can read the model: scores and features through
        ``subject.reader``."""


class QaTaskConfig(TaskConfig):
    """Fields shared by the tasks on the bios world's questions.

    ``attributes`` selects the questions a task uses (to train on and to evaluate), default all
    six; ``eval_splits`` the people whose questions are evaluated (default the QA-test people).
    ``train_populations`` and ``eval_populations`` name the world's populations it trains on and
    evaluates (default all; see ``worlds.bios_populations.PopulationSplit``). With populations,
    rows carry the person's ``population``, ``exposures`` and ``documents``.
    """

    attributes: list[str] | None = None  # None: all six attributes
    eval_splits: list[Split] = Field(default_factory=lambda: ["test"], min_length=1)
    # the populations whose people it trains on (fine-tuning, probes, shots); None: all
    train_populations: list[str] | None = Field(default=None, min_length=1)
    # the populations whose people it evaluates; None: all
    eval_populations: list[str] | None = Field(default=None, min_length=1)
    facets: ClassVar[tuple[str, ...]] = FACETS

    @model_serializer(mode="wrap")
    def _without_populations(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when None, so a task (and the run whose callbacks hold it) keeps its key.
        data = handler(self)
        for name in ("train_populations", "eval_populations"):
            if getattr(self, name) is None:
                data.pop(name, None)
        return data

    @field_validator("attributes")
    @classmethod
    def _known_attributes(cls, value: list[str] | None) -> list[str] | None:
        unknown = [a for a in value or [] if a not in ATTRIBUTES]
        if unknown:
            raise ValueError(
                f"unknown attributes {unknown}; expected names from {list(ATTRIBUTES)}"
            )
        if value is not None and not value:
            raise ValueError("attributes is empty; list at least one or leave it out for all")
        return value

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(self.attributes) if self.attributes else ATTRIBUTES

    @property
    def population_split(self) -> PopulationSplit:
        def names(value: list[str] | None) -> tuple[str, ...] | None:
            return None if value is None else tuple(value)

        return PopulationSplit(names(self.train_populations), names(self.eval_populations))

    def check_world(self, world: Any) -> None:
        if isinstance(world, BiosConfig):
            self.population_split.check(world.population_names())


def require_bios(world: Any, task: str) -> BiosWorld:
    """``world`` if it is a bios world; else a one-line error naming the task."""
    if not isinstance(world, BiosWorld):
        raise ValueError(
            f"task {task!r} asks questions about the bios world's people; "
            f"got a {type(world).__name__}, use world.name=bios"
        )
    return world
