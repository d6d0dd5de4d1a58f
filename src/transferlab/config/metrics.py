"""Per-example metrics, declared by the task that computes them.

A task config lists its metrics in the class variable ``TaskConfig.metrics``; every result row of
the task carries the identity columns (``IDENTITY_COLUMNS``) plus exactly those metrics. Analysis
and the report read the declarations, so a new metric needs no change outside its task: its name
labels tables and axes, ``higher_is_better`` decides what "better" means in a verdict, and
``range`` clips intervals to the values the metric can take. A task whose metrics depend on
its config (an lm-eval task's come from its task YAML) declares them with ``ConfigMetrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# What identifies a row (who, which example, what was predicted) rather than scores it.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "task",
    "example_id",
    "group",
    "split",
    "prediction",
    "target",
)
# Columns the results store adds to every row (experiment.results.collect_results).
STORE_COLUMNS: tuple[str, ...] = ("variant", "seed")


@dataclass(frozen=True)
class MetricSpec:
    """One per-example metric: its column name, direction, range and a one-line description.

    ``range`` is ``(low, high)`` with None for an open end: ``(0, 1)`` for an accuracy,
    ``(0, None)`` for bits per byte.
    """

    name: str
    higher_is_better: bool
    range: tuple[float | None, float | None]
    description: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in IDENTITY_COLUMNS + STORE_COLUMNS:
            raise ValueError(
                f"metric name {self.name!r} must be an identifier and not one of the row's "
                f"columns {list(IDENTITY_COLUMNS + STORE_COLUMNS)}; rename the metric"
            )
        low, high = self.range
        if low is not None and high is not None and not low < high:
            raise ValueError(f"metric {self.name!r} has range {self.range}; low must be < high")
        if not self.description or "\n" in self.description:
            raise ValueError(f"metric {self.name!r} needs a one-line description")

    @property
    def direction(self) -> str:
        """``"higher is better"`` or ``"lower is better"``, as reports write it."""
        return "higher is better" if self.higher_is_better else "lower is better"

    def bounds(self) -> tuple[float, float]:
        """``range`` with open ends as infinities (what ``estimate_mean`` clips to)."""
        low, high = self.range
        return (
            -float("inf") if low is None else float(low),
            float("inf") if high is None else float(high),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "higher_is_better": self.higher_is_better,
            "range": list(self.range),
            "description": self.description,
        }


class ConfigMetrics:
    """``TaskConfig.metrics`` for a task whose metrics follow from a config's fields rather than
    its class: on the class it is ``()`` (nothing is known before a config names what it runs),
    on a config ``declare(config)``, so analysis reads each config's own declarations."""

    def __init__(self, declare: Callable[[Any], tuple[MetricSpec, ...]]) -> None:
        self.declare = declare

    def __get__(self, config: Any, owner: type | None = None) -> tuple[MetricSpec, ...]:
        return () if config is None else self.declare(config)
