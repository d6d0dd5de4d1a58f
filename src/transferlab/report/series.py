"""The plain data the report's line figures draw: one run's (x, value) points, and a band over
the seeds of a variant (at each x the mean over the seeds that have a value there, the lowest
and the highest of them, and how many there are). Figures get these, never raw files, so what a
figure shows is tested on the numbers, not on the pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.report.formatting import is_number

Series = list[tuple[float, float]]  # (x, value) of one run, e.g. (step, loss)


@dataclass(frozen=True)
class SeedBand:
    """Per x value (ascending): the mean over the runs that have a value there, their lowest and
    highest value, and their number."""

    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: list[int]


def metric_series(rows: Sequence[dict[str, Any]], key: str, x: str = "step") -> Series:
    """(row[x], row[key]) of the rows where ``key`` holds a finite number (metrics.jsonl rows
    carry only the fields logged at their step)."""
    return [(float(row[x]), float(row[key])) for row in rows if is_number(row.get(key))]


def seed_band(series: Sequence[Series]) -> SeedBand:
    """The band of several runs' series: a run missing some x (a partial run, a step it did not
    log) just does not count there."""
    by_x: dict[float, list[float]] = {}
    for run in series:
        for x, value in run:
            by_x.setdefault(x, []).append(value)
    xs = sorted(by_x)
    values = [np.array(by_x[x]) for x in xs]
    return SeedBand(
        x=xs,
        mean=[float(v.mean()) for v in values],
        low=[float(v.min()) for v in values],
        high=[float(v.max()) for v in values],
        n=[len(v) for v in values],
    )


def variant_bands(curves: dict[str, list[list[dict[str, Any]]]], key: str) -> dict[str, SeedBand]:
    """Per variant (``curves``: one metrics list per seed), the band over its seeds of ``key``
    against the step; a variant none of whose runs logged ``key`` is left out."""
    bands = {}
    for variant, runs in curves.items():
        series = [s for s in (metric_series(rows, key) for rows in runs) if s]
        if series:
            bands[variant] = seed_band(series)
    return bands
