"""The exact (Clopper-Pearson) interval for a proportion: k successes in n trials.

It inverts two one-sided binomial tests, so it never covers less than ``level`` whatever the true
proportion, at the price of being wider than nominal for small n (with n = 5 and k = 5 the 95%
interval is [0.478, 1]). It is what verdict stability uses: how often a verdict repeats over a
handful of reseeded runs, where a normal approximation would claim more certainty than five
trials give. In beta quantiles:

    low  = Beta(alpha/2; k, n - k + 1)      (0 when k = 0)
    high = Beta(1 - alpha/2; k + 1, n - k)  (1 when k = n)
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``n``, their fraction and its exact ``level`` interval."""

    successes: int
    n: int
    fraction: float
    low: float
    high: float
    level: float


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> Proportion:
    """The fraction ``successes / n`` with its exact two-sided ``level`` interval."""
    if n < 1:
        raise ValueError(f"n must be at least 1 trial, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    alpha = 1.0 - level
    low = 0.0 if successes == 0 else stats.beta.ppf(alpha / 2, successes, n - successes + 1)
    high = 1.0 if successes == n else stats.beta.ppf(1 - alpha / 2, successes + 1, n - successes)
    return Proportion(successes, n, successes / n, float(low), float(high), level)
