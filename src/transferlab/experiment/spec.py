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

``measures`` are quantities of the training runs themselves (``experiment.measures``), one value
per run of their ``stage`` (default: the last); ``over: AXIS`` collapses an axis, either by a
sweep measure's own definition (``lr_sensitivity``) or by ``pick: best`` (the level with the best
mean final validation loss over seeds). A collapsed measure's variants are named by the levels
of the remaining axes (``all`` when none remain). ``expect`` may be a list; an item names a
``task`` or a ``measure`` (by label), and ``reference`` the other side (default: the first
comparison that has ``variant`` on one side).
```yaml
measures:
  - {name: lr_sensitivity, over: lr}
  - {name: steps_to_loss, target: 4.2, over: lr, pick: best}
expect:
  - {measure: lr_sensitivity, variant: qknorm, reference: plain, direction: better}
```

``sizes`` is an ordered ladder of named sizes, smallest first, the last the target ("largest"),
each a set of dotted overrides (usually the model preset and the token budget together). Every
variant is trained at every size and seed; comparisons are made within a size, the results
carry a ``size`` column, and ``summary.json`` gains ``decisions``: how often each smaller size
orders the variants as the largest does (``analysis.decisions``). A task expectation is judged
at the largest size; a ``decision`` expectation on the ladder itself. A spec without ``sizes``
plans exactly the runs (and run keys) it always did.
```yaml
sizes:
  s1: {model.preset: nano, trainer.max_steps: 100}
  s2: {model.preset: micro, trainer.max_steps: 200}
  s3: {model.preset: tiny, trainer.max_steps: 400}
expect:
  - {decision: better_than_accuracy, task: qa_score, metric: p_correct}
  - {decision: above_chance, task: qa_score, metric: p_correct, size: s2}
```
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from transferlab.config import (
    MEASURES,
    TASKS,
    BaseConfig,
    MetricSpec,
    RunConfig,
    Seed,
    TaskConfig,
    one_or_many,
)
from transferlab.config.schemas import check_folder_name
from transferlab.experiment.measures import MeasureConfig

Overrides = dict[str, Any]
IMPLICIT_STAGE = "pretrain"  # the one stage of a spec without ``stages``
NO_AXIS_LEFT = "all"  # the one variant of a measure that collapses the only axis
_STAGE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class StageInit(BaseConfig):
    """Which checkpoint of the previous stage a stage starts from."""

    step: int | None = Field(default=None, ge=0)  # None: the previous stage's final checkpoint
    optimizer: bool = False  # also take its optimizer moments


class StageSpec(BaseConfig):
    """One run of a chain: the previous stage's config plus ``overrides`` (dotted keys)."""

    name: str  # a word; keys of overrides elsewhere may start with it
    overrides: Overrides = Field(default_factory=dict)  # dotted keys on the previous stage
    init: StageInit = Field(default_factory=StageInit)  # which checkpoint it starts from

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

    ``correction: holm`` treats the comparisons of one task on one metric (or of one measure)
    as a family of m: each gets a Holm-adjusted p-value (``p_holm``), and its interval, and so
    its verdict, is at the Bonferroni level ``1 - (1 - level) / m``, so that every verdict of
    the family holds together at ``level`` (Holm's step-down has no matching intervals).
    """

    baseline: str | None = None  # every variant is compared with this one
    pairs: list[tuple[str, str]] = Field(default_factory=list)  # or these [variant, reference]
    metric: str | None = None  # the primary metric (None: the headline metric)
    higher_is_better: bool | None = None  # None: from the metric's declaration
    min_effect: float = Field(default=0.0, ge=0)  # differences inside +-min_effect do not count
    level: float = Field(default=0.95, gt=0, lt=1)  # confidence level of the intervals
    # holm: per family (one task and metric, or one measure) Holm-adjusted p-values and
    # Bonferroni-level intervals and verdicts; none: each comparison on its own
    correction: Literal["none", "holm"] = "none"

    def family_level(self, size: int) -> float:
        """The level of each interval in a family of ``size`` comparisons: ``level``, or with
        the Holm correction the Bonferroni level ``1 - (1 - level) / size``."""
        if self.correction == "none" or size <= 1:
            return self.level
        return 1.0 - (1.0 - self.level) / size


class ExpectSpec(BaseConfig):
    """A recipe's prediction, stated before it runs: ``variant`` is ``direction`` than
    ``reference`` (default: the other side of the first comparison that has ``variant``), or
    than a fixed ``value`` of the metric (a chance rate), on ``measure`` (a measure's label) or
    else on ``task`` (first task by default) and its ``metric`` (default: the primary one).
    ``not_worse`` (non-inferiority) and ``same``
    (equivalence) are judged against ``margin``, in the metric's or measure's units. Or, in a
    spec with ``sizes``, a ``decision`` on the ladder instead of a ``variant``: ``better``
    (``metric`` orders more pairs as the largest size does than ``than``) or ``above_chance``
    (at ``size``, more than half the pairs are ordered as at the largest size)."""

    variant: str | None = None  # the variant the claim is about (None: a decision's claim)
    # or a claim on the size ladder's decisions (``sizes``): better: ``metric`` orders more
    # pairs as the largest size does than metric ``than``; above_chance: at ``size``, more than
    # half the pairs (chance) are ordered as at the largest size
    decision: Literal["better", "above_chance"] | None = None
    than: str | None = None  # the other metric of decision: better (e.g. correct)
    # the smaller size a decision is judged at (None: better, the mean over the smaller sizes;
    # above_chance, the smallest)
    size: str | None = None
    # better / worse than the other side; not_worse: by no more than margin; same: within margin
    direction: Literal["better", "worse", "not_worse", "same"] = "better"
    task: str | None = None  # the task it is judged on (None: the first, unless a measure)
    # the task's metric it is judged on (None: compare.metric, the primary)
    metric: str | None = None
    measure: str | None = None  # or the measure (its label) it is judged on
    reference: str | None = None  # the other side (None: from the first comparison of variant)
    value: float | None = None  # or a fixed value of the task's metric as the other side
    margin: float | None = Field(default=None, gt=0)  # the band of not_worse and same
    claim: str = ""  # the claim in words, shown with the verdict

    @model_serializer(mode="wrap")
    def _without_decision(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when unset, so specs written before decisions keep their dict (and key).
        return _without_unset(handler(self), DECISION_FIELDS)

    @model_validator(mode="after")
    def _a_variant_or_a_decision(self) -> ExpectSpec:
        if (self.variant is None) == (self.decision is None):
            raise ValueError(
                "an expectation names a variant (a claim about one variant) or a decision (a "
                "claim about the size ladder: better or above_chance), exactly one of them"
            )
        if self.decision is None:
            if self.than is not None or self.size is not None:
                raise ValueError(
                    "than and size belong to a decision expectation; drop them or add decision"
                )
            return self
        extra = [f for f in ("reference", "value", "margin", "measure") if getattr(self, f)]
        if extra:
            raise ValueError(
                f"decision {self.decision!r} is judged on decision accuracy, not on {extra}; "
                "drop them"
            )
        if self.decision == "better" and (self.than is None or self.than == self.metric):
            raise ValueError(
                "decision: better compares two metrics; give metric (e.g. p_correct) and than "
                "(another metric of the task, e.g. correct)"
            )
        if self.decision == "above_chance" and self.than is not None:
            raise ValueError("than belongs to decision: better; drop it")
        return self

    @model_validator(mode="after")
    def _one_subject(self) -> ExpectSpec:
        if self.task is not None and self.measure is not None:
            raise ValueError(
                f"names task {self.task!r} and measure {self.measure!r}; an expectation is "
                "judged on one of them, so keep one (or write two expectations)"
            )
        if self.reference is not None and self.reference == self.variant:
            raise ValueError(
                f"reference {self.reference!r} is its variant; name the other side of the "
                "comparison"
            )
        if self.metric is not None and self.measure is not None:
            raise ValueError(
                f"names metric {self.metric!r} with measure {self.measure!r}; a metric belongs "
                "to a task, so drop it or name the task instead"
            )
        return self

    @model_validator(mode="after")
    def _other_side_and_margin(self) -> ExpectSpec:
        if self.value is not None and (self.reference is not None or self.measure is not None):
            raise ValueError(
                f"value {self.value} is the other side of a task expectation; drop value, or "
                "drop reference and measure"
            )
        banded = self.direction in ("not_worse", "same")
        if banded and self.margin is None:
            raise ValueError(
                f"direction {self.direction!r} is judged against a margin; give margin (in the "
                "metric's units), e.g. margin: 0.05"
            )
        if not banded and self.margin is not None:
            raise ValueError(
                f"margin is the band of direction not_worse or same, not {self.direction!r}; "
                "drop it (compare.min_effect is the band of better and worse)"
            )
        return self


class CurvesSpec(BaseConfig):
    """Transfer curves: ``tasks`` on the current weights every ``every`` steps (and at the last
    step) of the runs of ``stage``."""

    every: int = Field(gt=0)  # steps between evaluations
    # empty: the experiment's tasks
    tasks: list[TASKS.type(TaskConfig, default="qa_score")] = Field(default_factory=list)
    stage: str | None = None  # None: the last stage


class ExperimentSpec(BaseConfig):
    """An experiment file (``transferlab run FILE``): variants of a base run, seeds, tasks,
    measures, comparisons and expectations."""

    name: str  # the experiment's folder (experiments/NAME)
    description: str = ""  # what the experiment asks, shown in its summary and report
    paper: str = ""  # the paper(s) whose claim it tests (a recipe's), shown on the scoreboard
    base: dict[str, Any] = Field(default_factory=dict)  # a run config (see run), shared by all
    # axis -> level -> dotted overrides of base; several axes make a grid of variants
    axes: dict[str, dict[str, Overrides]] = Field(default_factory=dict)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)  # training seeds
    # downstream tasks every run is evaluated on
    tasks: list[TASKS.type(TaskConfig, default="qa_finetune")] = Field(default_factory=list)
    compare: CompareSpec = Field(default_factory=CompareSpec)  # which variants are compared
    expect: one_or_many(ExpectSpec) | None = None  # the predictions the verdicts judge
    stages: list[StageSpec] = Field(default_factory=list)  # chained runs (default: one)
    curves: CurvesSpec | None = None  # transfer curves: tasks during pretraining
    # quantities of the training runs themselves
    measures: list[MEASURES.type(MeasureConfig, default="final_val_loss")] = Field(
        default_factory=list
    )
    # size -> dotted overrides: an ordered ladder, smallest first, the last the target size
    sizes: dict[str, Overrides] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _without_sizes(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when empty, so a spec without sizes keeps its dict (and its spec key).
        return _without_unset(handler(self), {"sizes": {}})

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
    def _measures_are_consistent(self) -> ExperimentSpec:
        labels = [measure.measure_label for measure in self.measures]
        if len(set(labels)) != len(labels):
            raise ValueError(f"measures {labels} repeat a label; give each a distinct label")
        stages = self.stage_names()
        for i, measure in enumerate(self.measures):
            where = f"measures.{i} ({measure.measure_label})"
            if measure.over is not None and measure.over not in self.axes:
                raise ValueError(
                    f"{where}: over {measure.over!r} is not an axis; choose one of "
                    f"{list(self.axes) or 'none: the experiment has no axes'}"
                )
            if measure.stage is not None and measure.stage not in stages:
                raise ValueError(f"{where}: stage {measure.stage!r} is not one of {stages}")
            if measure.variants == []:
                raise ValueError(
                    f"{where}: variants is empty; name the variants it reads, or leave it out "
                    "(all variants)"
                )
            unknown = [v for v in measure.variants or [] if v not in self.variant_levels()]
            if unknown:
                raise ValueError(
                    f"{where}: variants {unknown} are not variants of the experiment; choose "
                    f"from {self.variant_names()}"
                )
        return self

    @model_validator(mode="after")
    def _sizes_are_consistent(self) -> ExperimentSpec:
        if not self.sizes:
            return self
        if len(self.sizes) < 2:
            raise ValueError(
                f"sizes has {len(self.sizes)} size ({list(self.sizes)}); a ladder needs at least "
                "2 (smallest first, the target last), or leave sizes out"
            )
        for name in self.sizes:
            if not _STAGE_NAME.match(name):
                raise ValueError(f"size name {name!r} must be a word (letters, digits, _ or -)")
        if self.measures:
            raise ValueError(
                "measures are not computed per size yet; drop measures or sizes (run the "
                "ladder's sizes as separate experiments)"
            )
        for size, overrides in self.sizes.items():
            for variant, changes in self.variants().items():
                both = sorted(set(overrides) & set(changes))
                if both:
                    raise ValueError(
                        f"size {size!r} and variant {variant!r} both set {both}; a field is "
                        "set by the size ladder or by an axis, not both"
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
        # compare may name a collapsed measure's variants ("qknorm" when "lr" is collapsed).
        known = names.union(*(self.measure_variants(m) for m in self.measures))
        wanted = [self.compare.baseline] if self.compare.baseline else []
        wanted += [name for pair in self.compare.pairs for name in pair]
        for name in wanted:
            if name not in known:
                raise ValueError(f"variant {name!r} (in compare) is not one of {sorted(known)}")
        task_names = [task.task_name for task in self.tasks]
        if len(set(task_names)) != len(task_names):
            raise ValueError(f"tasks {task_names} repeat a name; give each a distinct label")
        for expect in self.expectations:
            if expect.decision is not None:
                self._check_decision(expect, task_names)
            else:
                self._check_expectation(expect, names, task_names)
        return self

    def _check_decision(self, expect: ExpectSpec, tasks: list[str]) -> None:
        where = f"expect decision {expect.decision!r}"
        if not self.sizes:
            raise ValueError(f"{where} is judged on the size ladder; add sizes (at least 2)")
        if expect.task is not None and expect.task not in tasks:
            raise ValueError(f"{where}: task {expect.task!r} is not one of {tasks}")
        task = self.expectation_task(expect)
        if task is None:
            raise ValueError(f"{where} needs a task to decide on; add one to tasks")
        declared = [m.name for m in self.task(task).metrics]
        for metric in (self.expectation_metric(expect), expect.than):
            if metric is not None and metric not in declared:
                raise ValueError(
                    f"{where}: task {task!r} does not declare metric {metric!r}; choose from "
                    f"{declared}"
                )
        smaller = self.size_names()[:-1]
        if expect.size is not None and expect.size not in smaller:
            raise ValueError(
                f"{where}: size {expect.size!r} is not a size smaller than the largest "
                f"({self.largest_size}); choose from {smaller}"
            )

    def _check_expectation(self, expect: ExpectSpec, names: set[str], tasks: list[str]) -> None:
        if expect.measure is not None:
            labels = [m.measure_label for m in self.measures]
            if expect.measure not in labels:
                raise ValueError(
                    f"expect measure {expect.measure!r} is not one of the measures "
                    f"{labels or '(none)'}; add it to measures or fix the label"
                )
            names = set(self.measure_variants(self.measure(expect.measure)))
        for name in (expect.variant, expect.reference):
            if name is not None and name not in names:
                subject = f"measure {expect.measure!r}" if expect.measure else "the experiment"
                raise ValueError(
                    f"variant {name!r} (in expect) is not one of {sorted(names)}, the variants "
                    f"of {subject}"
                )
        if expect.task and expect.task not in tasks:
            raise ValueError(f"expect.task {expect.task!r} is not one of {tasks}")

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
        for expect in self.task_expectations():
            expected = self.expectation_task(expect)
            wanted_metric = self.expectation_metric(expect)
            if expected is not None and not self.task(expected).metric(wanted_metric):
                field = "expect.metric" if expect.metric else "compare.metric"
                raise ValueError(
                    f"expect.task {expected!r} does not declare {field} {wanted_metric!r} (it "
                    f"declares {[m.name for m in self.task(expected).metrics]}); the verdict "
                    f"needs that comparison, so set {field} to one of them"
                )
        return self

    @property
    def expectations(self) -> list[ExpectSpec]:
        """``expect`` as a list (one mapping is a list of one)."""
        if self.expect is None:
            return []
        return self.expect if isinstance(self.expect, list) else [self.expect]

    def task_expectations(self) -> list[ExpectSpec]:
        """The expectations judged on a task's comparisons (those that name no measure and no
        decision)."""
        return [e for e in self.expectations if e.measure is None and e.decision is None]

    def size_names(self) -> list[str]:
        """The sizes of the ladder, smallest first (empty without ``sizes``)."""
        return list(self.sizes)

    @property
    def largest_size(self) -> str | None:
        """The target size, the last of the ladder (None without ``sizes``)."""
        return self.size_names()[-1] if self.sizes else None

    def size_ladder(self) -> dict[str | None, Overrides]:
        """Size -> its overrides, smallest first; ``{None: {}}`` without sizes (one implicit
        size, which the planner and results leave unnamed)."""
        return dict(self.sizes) if self.sizes else {None: {}}

    def expectation_task(self, expect: ExpectSpec) -> str | None:
        """The task a task expectation is judged on (the first task unless it names one)."""
        if not self.tasks:
            return None
        return expect.task or self.tasks[0].task_name

    def expectation_metric(self, expect: ExpectSpec) -> str | None:
        """The metric a task expectation is judged on: its own, else the primary one."""
        return expect.metric or self.primary_metric

    @property
    def expect_task(self) -> str | None:
        """The task of the first task expectation (None without one or without tasks)."""
        first = next(iter(self.task_expectations()), None)
        return None if first is None else self.expectation_task(first)

    @property
    def primary_metric(self) -> str | None:
        """``compare.metric``, or the headline metric of the expectation's (else the first)
        task; None when there is no task to take it from."""
        if self.compare.metric is not None:
            return self.compare.metric
        name = self.expect_task or (self.tasks[0].task_name if self.tasks else None)
        metrics = self.task(name).metrics if name else ()
        return metrics[0].name if metrics else None

    def shown_metric(self, task: TaskConfig) -> MetricSpec | None:
        """The metric ``task`` is shown (and its decisions judged) by: the primary metric when
        it declares it, else its headline (first declared) metric."""
        return task.metric(self.primary_metric) or next(iter(task.metrics), None)

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
        for name, levels in self.variant_levels().items():
            merged: Overrides = {}
            for axis, level in levels.items():
                merged.update(self.axes[axis][level])
            out[name] = merged
        return out

    def variant_levels(self) -> dict[str, dict[str, str]]:
        """Variant name -> its level of each axis, in axis order (``base``: no axes)."""
        return variant_levels(self.axes)

    def variant_names(self) -> list[str]:
        return list(self.variants())

    def measure(self, label: str) -> MeasureConfig:
        return next(m for m in self.measures if m.measure_label == label)

    def measure_stage(self, measure: MeasureConfig) -> str:
        """The stage whose runs ``measure`` reads."""
        return measure.stage or self.stage_names()[-1]

    def measure_variants(self, measure: MeasureConfig) -> dict[str, list[str]]:
        """The variants ``measure`` has -> the experiment's variants each stands for: itself
        without ``over``; with it, one per level of that axis (in its order), the variant named
        by the levels of the other axes (``all`` when none remain). Only the variants the
        measure reads (its ``variants``, default all) count."""
        out: dict[str, list[str]] = {}
        for name, levels in self.variant_levels().items():
            if not measure.reads(name):
                continue
            if measure.over is None:
                out[name] = [name]
                continue
            rest = [level for axis, level in levels.items() if axis != measure.over]
            out.setdefault("+".join(rest) or NO_AXIS_LEFT, []).append(name)
        return out

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

    def comparison_pairs(self, names: list[str] | None = None) -> list[tuple[str, str]]:
        """(variant, reference) pairs among ``names`` (default: the experiment's variants; a
        collapsed measure passes its own): the explicit pairs of those names, or all against
        the baseline when it is one of them, or else all pairs in order."""
        names = self.variant_names() if names is None else names
        pairs = [pair for pair in self.compare.pairs if set(pair) <= set(names)]
        if pairs:
            return pairs
        baseline = self.compare.baseline
        if baseline in names:
            return [(n, baseline) for n in names if n != baseline]
        return list(itertools.combinations(names, 2))

    def compared_pairs(
        self, names: list[str] | None = None, measure: str | None = None
    ) -> list[tuple[str, str]]:
        """``comparison_pairs(names)`` plus the (variant, reference) of each expectation on
        ``measure`` (a label; None: on a task) that they do not hold either way round, so every
        expectation's comparison is computed."""
        pairs = self.comparison_pairs(names)
        for expect in self.expectations:
            if expect.measure != measure or expect.reference is None:
                continue
            pair = (expect.variant, expect.reference)
            if pair not in pairs and pair[::-1] not in pairs:
                pairs.append(pair)
        return pairs


DECISION_FIELDS = {"decision": None, "than": None, "size": None}  # their unset values


def _without_unset(data: dict[str, Any], unset: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the fields of ``unset`` that hold their unset value."""
    return {k: v for k, v in data.items() if k not in unset or v != unset[k]}


def variant_levels(axes: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Variant name -> its level on each axis, for every combination of levels (the grid), in
    axis order; a variant is named by joining its levels with ``+``. Without axes, one variant
    ``base``. (``axes``: axis -> level -> overrides, as in the experiment file.)"""
    if not axes:
        return {"base": {}}
    combos = itertools.product(*(list(levels) for levels in axes.values()))
    return {"+".join(combo): dict(zip(axes, combo, strict=True)) for combo in combos}
