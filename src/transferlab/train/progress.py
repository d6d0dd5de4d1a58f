"""A rich progress bar for training: steps, loss, tokens/s and ETA; a no-op when disabled."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_enabled(requested: bool, is_main: bool) -> bool:
    """Show a bar only when asked, on rank 0, and on an interactive terminal (not in logs)."""
    return requested and is_main and sys.stderr.isatty()


class TrainProgress:
    """Context manager around a rich ``Progress`` drawn on stderr (stdout stays for results)."""

    def __init__(
        self, total_steps: int, start_step: int, enabled: bool, label: str = "train"
    ) -> None:
        self.enabled = enabled
        self.label = label
        self._progress: Progress | None = None
        self._task = None
        self._total = total_steps
        self._start = start_step

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn(f"[bold]{self.label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[tokens_per_s]} tok/s"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "train", total=self._total, completed=self._start, loss="-", tokens_per_s="-"
            )
        return self

    def update(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, completed=step, loss=f"{loss:.4f}", tokens_per_s=f"{tokens_per_s:,.0f}"
            )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None
