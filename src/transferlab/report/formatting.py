"""How numbers read in the report and the terminal: a value with its interval, its n, a p-value.

Both outputs share these, so a number looks the same on the page and in the terminal, and a
missing value (NaN, None) reads as "n/a" instead of "nan".
"""

from __future__ import annotations

import math
from typing import Any


def at_size(name: str, row: dict[str, Any]) -> str:
    """``name @ s1`` for a row of a spec with ``sizes`` (it names its size), else ``name``."""
    return f"{name} @ {row['size']}" if row.get("size") else name


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any, digits: int = 3, signed: bool = False) -> str:
    if not is_number(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval(mean: Any, low: Any, high: Any, digits: int = 3, signed: bool = False) -> str:
    """``0.512 [0.431, 0.598]``; the bracket is left out when the interval is undefined."""
    head = number(mean, digits, signed)
    if not (is_number(low) and is_number(high)):
        return f"{head} [interval n/a]"
    return f"{head} [{number(low, digits, signed)}, {number(high, digits, signed)}]"


def quantity_interval(mean: Any, low: Any, high: Any, signed: bool = False) -> str:
    """A measure's value with its interval, whatever its scale (a loss, steps, bytes): four
    significant digits of the largest of the three and as many decimals for each, thousands
    separated; integers (steps, counts) without decimals. ``1,024 [980, 1,068]``."""
    shown = [v for v in (mean, low, high) if is_number(v)]
    decimals = 0
    if not all(float(v).is_integer() for v in shown):
        scale = max(abs(v) for v in shown)
        decimals = max(0, 3 - math.floor(math.log10(scale)))

    def one(value: Any) -> str:
        return f"{value:{'+' if signed else ''},.{decimals}f}" if is_number(value) else "n/a"

    if not (is_number(low) and is_number(high)):
        return f"{one(mean)} [interval n/a]"
    return f"{one(mean)} [{one(low)}, {one(high)}]"


def significant(value: Any) -> str:
    """Four significant digits, thousands separated, for a lone value of any scale (a
    measure's MDE80): ``0.01234``, ``1,024``."""
    return f"{value:,.4g}" if is_number(value) else "n/a"


def seeds_by_examples(row: dict[str, Any]) -> str:
    """The n behind an estimate or comparison: ``2 seeds x 150 examples``."""
    seeds, examples = row.get("n_seeds"), row.get("n_examples")
    return f"{seeds} seed{'' if seeds == 1 else 's'} x {examples} examples"


def p_value(value: Any) -> str:
    if not is_number(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def metric_range(bounds: list[Any]) -> str:
    """A metric's declared range: ``[0, 1]``, ``[0, inf)`` for an open end."""
    low, high = bounds
    left = "(-inf" if low is None else f"[{low:g}"
    right = "inf)" if high is None else f"{high:g}]"
    return f"{left}, {right}"


def level(value: Any) -> str:
    """``95%`` for a confidence level of 0.95, ``99.64%`` for a Bonferroni level."""
    return f"{value * 100:.4g}%" if is_number(value) else "95%"


def duration(seconds: Any) -> str:
    if not is_number(seconds):
        return "n/a"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def wall_time(entry: dict[str, Any] | None) -> str:
    """An invocation's wall time and what the cache held (``experiment.invocations``): ``4 min
    08 s (0 of 21 runs reused)``; ``n/a`` without one."""
    if entry is None:
        return "n/a"
    reused = f"{entry['runs_reused']} of {entry['runs']} runs reused"
    return f"{duration(entry.get('seconds'))} ({reused})"


def count(value: Any) -> str:
    """Integers with thousands separators (``1,234,567``); other values as they are."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else number(value)


def note_value(row: dict[str, Any] | None) -> str:
    """A task note's value over a variant's runs: ``3``, or ``2-4`` when its runs differ."""
    if row is None:
        return "n/a"
    low, high = row["low"], row["high"]
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"
