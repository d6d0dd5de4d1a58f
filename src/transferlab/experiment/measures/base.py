"""The interface of a measure: one number per training run, compared between variants over seeds.

A measure config (registered in ``config.MEASURES``, listed in an experiment's ``measures:``)
computes one ``RunValue`` from what a finished run left behind (``RunRecord``: its row of
``results/runs.parquet``, its ``metrics.jsonl`` rows, its stored config and its
``run_info.json``), for each run of its ``stage`` (and of its ``variants``, when it names them).
With ``over: AXIS`` the values of the levels of that axis collapse into one per remaining variant
and seed: a sweep measure (``sweep = True``, e.g. ``lr_sensitivity``) computes it from all levels
(``collapse``), any other takes the value at the level that ``pick: best`` chooses (the best mean
final validation loss over seeds). ``experiment.measure_analysis`` does the collapsing, estimates
and paired comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from transferlab.config import ComponentConfig, RunConfig


@dataclass(frozen=True)
class RunRecord:
    """What a measure reads of one finished run."""

    summary: dict[str, Any]  # its row of results/runs.parquet (experiment.results.run_summary)
    metrics: list[dict[str, Any]]  # the rows of its metrics.jsonl, in step order
    config: RunConfig  # as its trainer stored it (model.vocab_size filled in)
    info: dict[str, Any] = field(default_factory=dict)  # its run_info.json
    # its directory, for what a run writes beside its metrics (downstream curve rows)
    run_dir: Path | None = None

    def logged(self, field: str) -> list[dict[str, Any]]:
        """The metrics rows that carry a value of ``field``."""
        return [row for row in self.metrics if row.get(field) is not None]

    def validation_rows(self) -> list[dict[str, Any]]:
        """The rows with a validation loss; a run that logged none is a one-line ValueError
        (a loss-based measure of it would be empty, not a number)."""
        rows = self.logged("val_loss")
        if not rows:
            raise ValueError(
                f"{self.describe()} logged no val_loss; a loss-based measure needs validation "
                "data (data.val_fraction > 0 or a world with validation people, and "
                "trainer.eval_batches > 0)"
            )
        return rows

    def describe(self) -> str:
        s = self.summary
        return f"run {s.get('run_id')} ({s.get('variant')}, seed {s.get('seed')})"


@dataclass(frozen=True)
class RunValue:
    """A measure's value for one run. ``censored``: the true value lies beyond ``value`` (a run
    that never reached its target counts as reaching it at its budget, ``max_steps``)."""

    value: float
    censored: bool = False


def as_number(value: Any, what: str) -> float:
    """``value`` as a float (None: NaN, a missing number); anything else that is not a number
    is a one-line ValueError naming ``what`` it is."""
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is {value!r}, not a number; choose a numeric field")
    return float(value)


class MeasureConfig(ComponentConfig):
    """A measure: ``label`` names it in the summary (default: its name), ``stage`` is the stage
    whose runs it reads (default: the last), ``over``/``pick`` collapse an axis.

    ``higher_is_better`` says which direction a verdict calls better. A measure of a fixed
    quantity declares it in ``direction`` (a loss: False); the field may then be left out and,
    when given, must agree. A measure of an arbitrary quantity (``direction = None``) needs it.
    """

    label: str | None = None  # its name in the summary and in expect.measure; None: its name
    stage: str | None = None  # the stage whose runs it reads; None: the last
    # The experiment's variants whose runs it reads (None: all), for a quantity only some
    # variants log (a router's statistics exist in the moe variants, not in a dense one).
    variants: list[str] | None = None
    over: str | None = None  # an axis of the experiment, collapsed
    pick: Literal["best"] | None = None  # how a per-run measure collapses ``over``
    higher_is_better: bool

    # True: the measure is defined over all levels of ``over`` (``collapse``), not per run.
    sweep: ClassVar[bool] = False
    # The fixed direction of the quantity (None: the config's ``higher_is_better`` says it).
    direction: ClassVar[bool | None] = None

    @model_validator(mode="before")
    @classmethod
    def _fill_direction(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name, given = data.get("name", cls.__name__), data.get("higher_is_better")
        if cls.direction is None:
            if given is None:
                raise ValueError(
                    f"measure {name!r} needs higher_is_better: true or false (whether a larger "
                    "value is better); a verdict needs the direction"
                )
            return data
        if given is not None and given != cls.direction:
            better = "higher" if cls.direction else "lower"
            raise ValueError(
                f"measure {name!r} is {better}-is-better; higher_is_better={given} contradicts "
                "it, leave higher_is_better out"
            )
        return {**data, "higher_is_better": cls.direction}

    @model_validator(mode="after")
    def _collapse_is_consistent(self) -> MeasureConfig:
        name = self.measure_label
        if self.sweep and self.over is None:
            raise ValueError(
                f"measure {name!r} is defined over a sweep; name the swept axis with over: AXIS"
            )
        if self.sweep and self.pick is not None:
            raise ValueError(f"measure {name!r} uses every level of over: {self.over}; remove pick")
        if not self.sweep and self.over is not None and self.pick is None:
            raise ValueError(
                f"measure {name!r}: over: {self.over} needs pick: best (the level with the best "
                "mean final validation loss over seeds); or remove over"
            )
        if self.pick is not None and self.over is None:
            raise ValueError(f"measure {name!r}: pick needs over: AXIS (the axis to pick from)")
        return self

    @property
    def measure_label(self) -> str:
        return self.label or self.name

    def reads(self, variant: str) -> bool:
        """Whether the measure reads the runs of the experiment's ``variant``."""
        return self.variants is None or variant in self.variants

    def describe(self) -> str:
        """One line for the report: what the number is."""
        raise NotImplementedError

    def compute(self, run: RunRecord) -> RunValue:
        """The measure's value for one run."""
        raise NotImplementedError

    def collapse(self, values: list[float]) -> float:
        """A sweep measure's value from its per-run values at every level of ``over``."""
        raise NotImplementedError(f"measure {self.name!r} is not a sweep measure")
