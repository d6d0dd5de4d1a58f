"""The result row every task writes: one per example and run.

Rows of all tasks share one schema so they can be stacked into one table and paired across runs
by ``example_id`` (stable for a world seed: it names the person and attribute, not a position).
Scores a method does not define are NaN, never omitted, so every row has every column.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

NAN = math.nan


@dataclass(frozen=True)
class ExampleResult:
    """One example of one task in one run.

    ``correct`` is 0.0 or 1.0 (a float so that means and paired differences need no cast).
    ``p_correct``, ``margin``, ``norm_p_correct`` and ``acc_norm`` are continuous or secondary
    scores whose meaning each task documents; NaN where the task does not define them.
    """

    run_id: str
    task: str
    example_id: str
    group: str
    split: str
    prediction: str
    target: str
    correct: float
    p_correct: float = NAN
    margin: float = NAN
    norm_p_correct: float = NAN
    acc_norm: float = NAN

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ExampleResult))
