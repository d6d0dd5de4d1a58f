"""Training metrics: one JSON object per line in ``metrics.jsonl`` (readable by pandas/duckdb).

Rows carry ``step`` so that a resumed run can drop the rows logged after its checkpoint and
continue the file as if it had never stopped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def read_metrics(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
    """Appends rows to a JSONL file; a disabled log (on ranks other than 0) writes nothing."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def reset(self) -> None:
        """Start an empty log (a fresh run drops rows of an attempt that saved no checkpoint)."""
        if self.enabled:
            self.path.write_text("")

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (the checkpoint a run resumes from)."""
        if not self.enabled:
            return
        kept = [row for row in read_metrics(self.path) if row["step"] <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(tmp, self.path)


class IntervalMeter:
    """Mean training loss and throughput over the steps since the last logged row.

    The loss sum and step count are part of a checkpoint (``state_dict``), so the first row after
    a resume averages over the same steps as in an uninterrupted run; timing is not (it is
    wall-clock and cannot be reproduced anyway).
    """

    def __init__(self) -> None:
        self.reset()

    def add(self, loss: float, tokens: int) -> None:
        self.loss_sum += loss
        self.steps += 1
        self.tokens += tokens

    def mean_loss(self) -> float | None:
        return self.loss_sum / self.steps if self.steps else None

    def tokens_per_s(self) -> float:
        return self.tokens / max(time.perf_counter() - self.started, 1e-9)

    def reset(self) -> None:
        """Start a new interval (after a logged row)."""
        self.loss_sum = 0.0
        self.steps = 0
        self.start_clock()

    def start_clock(self) -> None:
        """Measure throughput from now (setup time is not training time)."""
        self.tokens = 0
        self.started = time.perf_counter()

    def state_dict(self) -> dict[str, float | int]:
        return {"loss_sum": self.loss_sum, "steps": self.steps}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.loss_sum = float(state["loss_sum"])
        self.steps = int(state["steps"])
