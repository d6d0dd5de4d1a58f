"""How numbers read in the report and the terminal: a value with its interval, its n, a p-value.

Both outputs share these, so a number looks the same on the page and in the terminal, and a
missing value (NaN, None) reads as "n/a" instead of "nan".
"""

from __future__ import annotations

import math
from typing import Any


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any, digits: int = 3, signed: bool = False, general: bool = False) -> str:
    """``digits`` decimals; ``general``: ``digits + 1`` significant digits instead, for
    quantities of any scale (steps, bytes, a loss)."""
    if not is_number(value):
        return "n/a"
    spec = f".{digits + 1}g" if general else f".{digits}f"
    return f"{value:{'+' if signed else ''}{spec}}"


def interval(
    mean: Any, low: Any, high: Any, digits: int = 3, signed: bool = False, general: bool = False
) -> str:
    """``0.512 [0.431, 0.598]``; the bracket is left out when the interval is undefined."""
    head = number(mean, digits, signed, general)
    if not (is_number(low) and is_number(high)):
        return f"{head} [interval n/a]"
    bounds = (number(bound, digits, signed, general) for bound in (low, high))
    return f"{head} [{', '.join(bounds)}]"


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
    """``95%`` for a confidence level of 0.95."""
    return f"{value:.0%}" if is_number(value) else "95%"


def duration(seconds: Any) -> str:
    if not is_number(seconds):
        return "n/a"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def count(value: Any) -> str:
    """Integers with thousands separators (``1,234,567``); other values as they are."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else number(value)
