"""The experiment file: a base run, axes of named variants, seeds, downstream tasks, comparisons.

```yaml
name: knowledge-augmentation
base: {world: {name: bios, num_people: 300}, model: {preset: tiny}, ...}   # a run config
axes:
  augmentation:                       # an axis: named levels, each a set of dotted overrides
    fixed: {world.rephrasings: 1, world.exposures: 5}
    augmented: {world.rephrasings: 5, world.shuffle_sentences: true}
seeds: [0, 1]
tasks: [{name: qa_finetune, steps: 300}]
compare: {baseline: fixed, metric: correct}   # a metric the tasks declare (TaskConfig.metrics)
expect: {variant: augmented, direction: better, task: qa_finetune}
```
Several axes make a grid: every combination of levels is a variant, named by joining the level
names with ``+`` in axis order. Seeds vary the training seed (``seed``) only: the world and its
examples stay the same, so results pair across seeds and variants.

``stages`` chains runs: each stage is the previous stage's config plus its ``overrides``,
initialized from the previous stage's final checkpoint (``init.step`` picks another kept one,
``init.optimizer`` also takes its optimizer moments). Without ``stages`` there is one implicit
stage, ``pretrain``. An override key may start with a stage name to set that stage's field
(``continue.schedule.warmup_steps: 0``); a key without one sets the first stage (the base), from
which later stages inherit it. A task evaluates the runs of its ``stage:`` (default: the last).
```yaml
stages:
  - {name: pretrain}
  - {name: continue, overrides: {schedule.warmup_steps: 20, trainer.max_steps: 100}}
```

``curves`` asks for transfer curves: its tasks (default: the experiment's ``tasks``) run on the
current weights every ``every`` steps and at the last step of each run of its ``stage``
(default: the last), through the ``downstream`` training callback; results collect them into
``results/curves.parquet`` and the report plots them. A spec without ``curves`` plans exactly
the runs (and run keys) it always did.
```yaml
curves: {every: 50, tasks: [{name: qa_score, n_choices: 4}]}
```
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from transferlab.config import TASKS, BaseConfig, RunConfig, Seed, TaskConfig
from transferlab.config.schemas import check_folder_name

Overrides = dict[str, Any]
IMPLICIT_STAGE = "pretrain"  # the one stage of a spec without ``stages``
_STAGE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class StageInit(BaseConfig):
    """Which checkpoint of the previous stage a stage starts from."""

    step: int | None = Field(default=None, ge=0)  # None: the previous stage's final checkpoint
    optimizer: bool = False  # also take its optimizer moments


class StageSpec(BaseConfig):
    """One run of a chain: the previous stage's config plus ``overrides`` (dotted keys)."""

    name: str
    overrides: Overrides = Field(default_factory=dict)
    init: StageInit = Field(default_factory=StageInit)

    @model_validator(mode="after")
    def _name_is_a_prefix(self) -> StageSpec:
        if not _STAGE_NAME.match(self.name) or self.name in RunConfig.model_fields:
            raise ValueError(
                f"stage name {self.name!r} must be a word (letters, digits, _ or -) that is not "
                f"a run config section ({', '.join(RunConfig.model_fields)}); rename it"
            )
        return self


class CompareSpec(BaseConfig):
    """Which variants are compared: every variant against ``baseline``, or explicit ``pairs``.

    Every task is compared on each metric it declares; ``metric`` is the primary one, which the
    verdict, ``min_effect`` and the report's figures use (None: the headline metric, the first
    declared, of the expectation's task or else of the first task). Whether higher is better
    comes from the metric's declaration; ``higher_is_better``, when given, must agree with it.
    """

    baseline: str | None = None
    pairs: list[tuple[str, str]] = Field(default_factory=list)
    metric: str | None = None
    higher_is_better: bool | None = None
    min_effect: float = Field(default=0.0, ge=0)  # differences inside +-min_effect do not count
    level: float = Field(default=0.95, gt=0, lt=1)


class ExpectSpec(BaseConfig):
    """A recipe's prediction, stated before it runs: ``variant`` is ``direction`` than the
    comparison's other side on ``task`` (first task by default)."""

    variant: str
    direction: Literal["better", "worse"] = "better"
    task: str | None = None
    claim: str = ""


class CurvesSpec(BaseConfig):
    """Transfer curves: ``tasks`` on the current weights every ``every`` steps (and at the last
    step) of the runs of ``stage``."""

    every: int = Field(gt=0)
    tasks: list[TASKS.type(TaskConfig, default="qa_score")] = Field(default_factory=list)
    stage: str | None = None  # None: the last stage


class ExperimentSpec(BaseConfig):
    name: str
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, dict[str, Overrides]] = Field(default_factory=dict)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    tasks: list[TASKS.type(TaskConfig, default="qa_finetune")] = Field(default_factory=list)
    compare: CompareSpec = Field(default_factory=CompareSpec)
    expect: ExpectSpec | None = None
    stages: list[StageSpec] = Field(default_factory=list)
    curves: CurvesSpec | None = None

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        return check_folder_name(name, "the experiment's folder (experiments/NAME)")

    @model_validator(mode="after")
    def _stages_are_consistent(self) -> ExperimentSpec:
        names = self.stage_names()
        if len(set(names)) != len(names):
            raise ValueError(f"stages {names} repeat a name; give each stage a distinct name")
        if self.stages and self.stages[0].init != StageInit():
            raise ValueError(
                f"stages.0 ({names[0]}) has an init but there is no stage before it; remove it "
                "(the first stage starts as base says)"
            )
        for task in self.tasks:
            if task.stage is not None and task.stage not in names:
                raise ValueError(
                    f"task {task.task_name!r} attaches to stage {task.stage!r}, not one of {names}"
                )
        return self

    @model_validator(mode="after")
    def _curves_are_consistent(self) -> ExperimentSpec:
        if self.curves is None:
            return self
        names = self.stage_names()
        if self.curves.stage is not None and self.curves.stage not in names:
            raise ValueError(f"curves.stage {self.curves.stage!r} is not one of the stages {names}")
        labels = [task.task_name for task in self.curve_tasks()]
        if not labels:
            raise ValueError(
                "curves has no tasks: list them in curves.tasks or in the experiment's tasks"
            )
        if len(set(labels)) != len(labels):
            raise ValueError(f"curves.tasks {labels} repeat a name; give each a distinct label")
        callbacks = (self.base.get("trainer") or {}).get("callbacks") or []
        if any(isinstance(c, dict) and c.get("name") == "downstream" for c in callbacks):
            raise ValueError(
                "curves and a downstream callback in base.trainer.callbacks would both write "
                "the runs' downstream rows; keep one (curves, which the report reads)"
            )
        return self

    @model_validator(mode="after")
    def _names_are_consistent(self) -> ExperimentSpec:
        for axis, levels in self.axes.items():
            if not levels:
                raise ValueError(f"axes.{axis} has no levels; give at least one named variant")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeat a seed; list each seed once")
        names = set(self.variant_names())
        wanted = [self.compare.baseline] if self.compare.baseline else []
        wanted += [name for pair in self.compare.pairs for name in pair]
        wanted += [self.expect.variant] if self.expect else []
        for name in wanted:
            if name not in names:
                raise ValueError(
                    f"variant {name!r} (in compare/expect) is not one of {sorted(names)}"
                )
        task_names = [task.task_name for task in self.tasks]
        if len(set(task_names)) != len(task_names):
            raise ValueError(f"tasks {task_names} repeat a name; give each a distinct label")
        if self.expect and self.expect.task and self.expect.task not in task_names:
            raise ValueError(f"expect.task {self.expect.task!r} is not one of {task_names}")
        return self

    @model_validator(mode="after")
    def _metric_is_declared(self) -> ExperimentSpec:
        if not self.tasks and self.compare.metric is None:
            return self  # nothing is evaluated, so nothing is compared
        metric = self.primary_metric
        declaring = [task for task in self.tasks if metric and task.metric(metric)]
        if not declaring:
            declared = "; ".join(
                f"{t.task_name}: {', '.join(m.name for m in t.metrics) or 'none'}"
                for t in self.tasks
            )
            raise ValueError(
                f"compare.metric {metric!r} is declared by no task (the tasks declare "
                f"{declared or 'nothing: there are no tasks'}); set compare.metric to one of those"
            )
        wanted = self.compare.higher_is_better
        for task in declaring:
            spec = task.metric(metric)
            if wanted is not None and spec.higher_is_better != wanted:
                raise ValueError(
                    f"compare.higher_is_better={wanted} contradicts task {task.task_name!r}, "
                    f"which declares {metric!r} {spec.direction}; leave higher_is_better out"
                )
        expected = self.expect_task
        if expected is not None and expected not in [t.task_name for t in declaring]:
            raise ValueError(
                f"expect.task {expected!r} does not declare compare.metric {metric!r} (it "
                f"declares {[m.name for m in self.task(expected).metrics]}); the verdict needs "
                "that comparison, so set compare.metric to one of them"
            )
        return self

    @property
    def expect_task(self) -> str | None:
        """The task the expectation is judged on (the first task unless it names one)."""
        if self.expect is None or not self.tasks:
            return None
        return self.expect.task or self.tasks[0].task_name

    @property
    def primary_metric(self) -> str | None:
        """``compare.metric``, or the headline metric of the expectation's (else the first)
        task; None when there is no task to take it from."""
        if self.compare.metric is not None:
            return self.compare.metric
        name = self.expect_task or (self.tasks[0].task_name if self.tasks else None)
        metrics = self.task(name).metrics if name else ()
        return metrics[0].name if metrics else None

    def curve_tasks(self) -> list[TaskConfig]:
        """The tasks of the transfer curves (none without ``curves``); an experiment task taken
        by default loses its ``stage``, which ``curves.stage`` replaces."""
        if self.curves is None:
            return []
        if self.curves.tasks:
            return list(self.curves.tasks)
        return [task.model_copy(update={"stage": None}) for task in self.tasks]

    @property
    def curves_stage(self) -> str | None:
        """The stage whose runs record transfer curves (None without ``curves``)."""
        if self.curves is None:
            return None
        return self.curves.stage or self.stage_names()[-1]

    def task(self, name: str) -> TaskConfig:
        return next(task for task in self.tasks if task.task_name == name)

    def variants(self) -> dict[str, Overrides]:
        """Variant name -> the merged dotted overrides of its levels (grid over all axes)."""
        out: dict[str, Overrides] = {}
        for name, levels in variant_levels(self.axes).items():
            merged: Overrides = {}
            for axis, level in levels.items():
                merged.update(self.axes[axis][level])
            out[name] = merged
        return out

    def variant_names(self) -> list[str]:
        return list(self.variants())

    def stage_list(self) -> list[StageSpec]:
        return self.stages or [StageSpec(name=IMPLICIT_STAGE)]

    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stage_list()]

    def task_stage(self, task: TaskConfig) -> str:
        """The stage whose runs ``task`` evaluates."""
        return task.stage or self.stage_names()[-1]

    def stage_overrides(self, overrides: Overrides) -> dict[str, Overrides]:
        """Split a variant's overrides by stage: ``NAME.a.b`` sets field ``a.b`` of stage NAME,
        any other key a field of the first stage."""
        names = self.stage_names()
        out: dict[str, Overrides] = {name: {} for name in names}
        for key, value in overrides.items():
            head, _, rest = key.partition(".")
            stage = head if head in out and rest else names[0]
            out[stage][rest if stage == head else key] = value
        return out

    def comparison_pairs(self) -> list[tuple[str, str]]:
        """(variant, reference) pairs: explicit pairs, or all against the baseline, or all pairs
        in order when neither is given."""
        if self.compare.pairs:
            return list(self.compare.pairs)
        names = self.variant_names()
        if self.compare.baseline:
            return [(n, self.compare.baseline) for n in names if n != self.compare.baseline]
        return list(itertools.combinations(names, 2))


def variant_levels(axes: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Variant name -> its level on each axis, for every combination of levels (the grid), in
    axis order; a variant is named by joining its levels with ``+``. Without axes, one variant
    ``base``. (``axes``: axis -> level -> overrides, as in the experiment file.)"""
    if not axes:
        return {"base": {}}
    combos = itertools.product(*(list(levels) for levels in axes.values()))
    return {"+".join(combo): dict(zip(axes, combo, strict=True)) for combo in combos}
