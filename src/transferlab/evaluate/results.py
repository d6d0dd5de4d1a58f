"""The result row every task writes: one per example and run.

A row is the identity columns (``IDENTITY_COLUMNS``: run, task, example, group, split, prediction,
target) plus exactly the metrics its task declares (``TaskConfig.metrics``), nothing padded: a
task that has no accuracy has no ``correct`` column. After them a row may carry some of its
task's declared facets (``TaskConfig.facets``), columns that describe the example (a bios
person's population and exposure count, when the world has populations), not scores. Rows are paired across runs by
``example_id`` (stable for a world seed: it names the person and attribute, not a position).
Stacking the rows of several tasks into one table leaves nulls in the columns of other tasks'
metrics; analysis reads only the declared ones per task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transferlab.config.metrics import IDENTITY_COLUMNS
from transferlab.config.schemas import TaskConfig


@dataclass(frozen=True)
class ExampleResult:
    """One example of one task in one run; ``metrics`` maps each declared metric to its value."""

    run_id: str
    task: str
    example_id: str
    group: str
    split: str
    prediction: str
    target: str
    metrics: Mapping[str, float]
    facets: Mapping[str, str | int] = field(default_factory=dict)  # of the task's ``facets``

    def to_dict(self) -> dict[str, Any]:
        identity = {column: getattr(self, column) for column in IDENTITY_COLUMNS}
        metrics = {name: float(value) for name, value in self.metrics.items()}
        return identity | metrics | dict(self.facets)


def row_columns(cfg: TaskConfig) -> tuple[str, ...]:
    """The columns of a row of ``cfg``'s task, in order: identity, then its declared metrics."""
    return (*IDENTITY_COLUMNS, *(metric.name for metric in cfg.metrics))


def check_rows(cfg: TaskConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` if each has the identity columns and exactly ``cfg``'s declared metrics (and
    none but its declared facets); else a one-line error naming what is missing or not
    declared."""
    expected = set(row_columns(cfg))
    for row in rows:
        if not expected <= set(row) <= expected | set(cfg.facets):
            missing = sorted(expected - set(row))
            extra = sorted(set(row) - expected - set(cfg.facets))
            raise ValueError(
                f"task {cfg.task_name!r} wrote a row missing {missing} and with undeclared "
                f"{extra}; a row holds {list(IDENTITY_COLUMNS)} and exactly the metrics "
                f"{type(cfg).__name__}.metrics declares"
            )
    return rows
