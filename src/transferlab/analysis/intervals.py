"""Interval for the mean of one variant on one task, over seeds and examples.

Two methods, both treating seeds *and* examples as random (the interval is about a new training
seed on new items of the same kind, not about these particular runs on this particular test set):

``"t"`` (default): ``mean +- sqrt(t_{S-1}^2 x seed part + t_{E-1}^2 x example part)``, the two
    parts of Var(mean) from ``variance.py``, each scaled by the t quantile of its own degrees of
    freedom. When seeds dominate this is the t interval on seed means (``S - 1`` df, as with so
    few seeds it must be); when examples dominate it is the usual interval over examples. It is
    conservative in between rather than anti-conservative: a pooled Satterthwaite df, tried first,
    covered only 0.91-0.93 with 2-3 seeds, because the df estimate grows exactly when the seed
    variance is underestimated. Observed 95% coverage on simulated data
    (tests/test_analysis_coverage.py, 1000 experiments each): 0.95-0.97 for 1-5 seeds with seed-,
    example- or noise-dominated variance, for binary outcomes and for paired differences; up to
    0.987 with 2 seeds when examples dominate (the price of 1 df for the seed part).
``"percentile"``: percentiles of the hierarchical bootstrap (``bootstrap.py``: seeds, then
    examples with shared indices). Shape-aware and never outside the data's range, but with few
    seeds it under-covers: resampling 5 seeds shrinks their variance by (S-1)/S and gives
    normal-like rather than t quantiles. With a dominant seed effect, 5 seeds x 200 examples, it
    covered 0.87; with dominant examples 0.97. Use it with many seeds.

Both methods give a two-sided p-value for "the mean is 0" that agrees with the interval: the
``level`` interval excludes 0 exactly when (``"t"``, by inverting the interval) or essentially when
(``"percentile"``, up to bootstrap resolution) ``p_value < 1 - level``. The paired comparisons
rely on that, so a p-value never contradicts a verdict.

Both also give ``mde80``, the minimum detectable effect at 80% power: the smallest true mean that
a two-sided ``level`` interval would exclude 0 for in 80% of repeated experiments of the same n
(seeds x examples, as used), reading the variance estimated here as the true one. It is the
distance from 0 to the interval's edge (the half-width) plus how far the estimate falls short of
its true mean in one experiment of five (the one-sided 80% quantile of its error). With ``"t"``
each part of the variance keeps its own df, as in the interval:

    MDE80 = sqrt(sum_p t_{df_p}(1 - alpha/2)^2 x part_p) + sqrt(sum_p t_{df_p}(0.8)^2 x part_p),

which with a single part (one seed, one example, or a measure's per-seed differences) is the
textbook ``(t_{1-alpha/2, df} + t_{0.8, df}) x SE``, SE = sqrt(Var(mean)). With ``"percentile"``
it is the same sum read off the bootstrap replicates: half the interval's width plus half the
width of their central 60%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special

from transferlab.analysis.bootstrap import bootstrap_means
from transferlab.analysis.matrix import as_seed_example_matrix
from transferlab.analysis.variance import VarianceParts, grand_mean_variance

Method = Literal["t", "percentile"]
METHODS: tuple[str, ...] = ("t", "percentile")
_SMALLEST_P = 1e-100  # below this a p-value is reported as 0 (t quantiles squared stay finite)
NAN = float("nan")
POWER = 0.8  # the power of ``mde80``: an effect of that size is detected 4 times in 5


@dataclass(frozen=True)
class Estimate:
    """A mean with its interval and the n behind it.

    ``seed_variance_captured`` is False with a single seed: the interval then reflects only
    example-to-example variation, not how another training seed would have done. ``mde80`` is
    the smallest distance of the true mean from a fixed value (a chance rate) that the interval
    would tell apart from it in 80% of repeated experiments (see the module docstring; NaN
    when no variation was seen).
    """

    mean: float
    low: float
    high: float
    n_seeds: int
    n_examples: int
    level: float
    method: str
    seed_variance_captured: bool
    mde80: float


@dataclass(frozen=True)
class MeanInterval:
    """Mean, interval, two-sided p-value for mean == 0 and the minimum detectable effect at 80%
    power (see the module docstring), as computed by ``mean_interval``."""

    mean: float
    low: float
    high: float
    p_value: float
    mde80: float


def estimate_mean(
    values: ArrayLike,
    level: float = 0.95,
    method: Method = "t",
    n_boot: int = 2000,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
) -> Estimate:
    """Mean of ``values`` [n_seeds, n_examples] (1-D: one seed) with a ``level`` interval.

    ``bounds`` is the metric's known range, e.g. ``(0, 1)`` for accuracy; the interval is clipped
    to it (a true mean lies inside it, so clipping never loses coverage). ``n_boot`` and ``seed``
    only matter for ``method="percentile"``; the same seed gives the same interval.
    """
    matrix = as_seed_example_matrix(values)
    result = mean_interval(matrix, level, method, n_boot, seed)
    low, high = result.low, result.high
    if bounds is not None:
        low, high = float(np.clip(low, *bounds)), float(np.clip(high, *bounds))
    return Estimate(
        mean=result.mean,
        low=low,
        high=high,
        n_seeds=matrix.shape[0],
        n_examples=matrix.shape[1],
        level=level,
        method=method,
        seed_variance_captured=matrix.shape[0] > 1,
        mde80=result.mde80,
    )


def mean_interval(
    matrix: np.ndarray, level: float, method: Method, n_boot: int, seed: int
) -> MeanInterval:
    """Interval and p-value for the grand mean of a validated [n_seeds, n_examples] matrix."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; choose one of {', '.join(METHODS)}")
    mean = float(matrix.mean())
    if matrix.min() == matrix.max():  # no variation at all: exactly zero width, not float noise
        # No variance was seen, so no effect size can be said to be detectable: the MDE is
        # undefined (NaN), not 0, which would read as "any effect would be detected".
        return MeanInterval(mean, mean, mean, p_value=1.0 if mean == 0.0 else 0.0, mde80=NAN)
    if method == "t":
        return _t_interval(matrix, level)
    return _percentile_interval(matrix, level, n_boot, np.random.default_rng(seed))


def _t_interval(matrix: np.ndarray, level: float) -> MeanInterval:
    mean = float(matrix.mean())
    parts = grand_mean_variance(matrix)
    half = _half_width(parts, 1.0 - level)
    # t_{df}(POWER) is the two-sided quantile for alpha = 2 (1 - POWER): _half_width's scaling.
    mde80 = half + _half_width(parts, 2.0 * (1.0 - POWER))
    return MeanInterval(mean, mean - half, mean + half, _t_p_value(parts, abs(mean)), mde80)


def _half_width(parts: VarianceParts, alpha: float) -> float:
    """sqrt(sum of t_{df}(1 - alpha/2)^2 x part): each part scaled by the quantile of its own df."""
    total = 0.0
    for variance, df in ((parts.seed, parts.seed_df), (parts.example, parts.example_df)):
        if variance > 0.0:
            # stdtrit is the t quantile function; -quantile(alpha/2) stays exact for tiny alpha.
            total += float(special.stdtrit(df, alpha / 2)) ** 2 * variance
    return float(np.sqrt(total))


def _t_p_value(parts: VarianceParts, distance: float) -> float:
    """Two-sided p for mean == 0: the alpha whose interval just reaches 0 (interval inversion)."""
    if distance == 0.0:
        return 1.0

    def reach(log_alpha: float) -> float:
        return _half_width(parts, float(np.exp(log_alpha))) - distance

    lowest = np.log(_SMALLEST_P)
    if reach(lowest) <= 0.0:  # 0 lies outside even the 1 - 1e-100 interval: report p as 0
        return 0.0
    return float(np.exp(optimize.brentq(reach, lowest, 0.0, xtol=1e-12)))


def _percentile_interval(
    matrix: np.ndarray, level: float, n_boot: int, rng: np.random.Generator
) -> MeanInterval:
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a percentile interval, got {n_boot}")
    replicates = bootstrap_means(matrix, n_boot, rng)
    low, high, power_low, power_high = np.quantile(
        replicates, [0.5 - level / 2, 0.5 + level / 2, 1.0 - POWER, POWER]
    )
    mde80 = float((high - low) / 2 + (power_high - power_low) / 2)
    # Smallest two-sided level at which the percentile interval would exclude 0 (+1: the
    # observed sample counts as a replicate, so p is never exactly 0).
    tail = min((replicates <= 0).sum(), (replicates >= 0).sum())
    p_value = min(1.0, 2 * (tail + 1) / (n_boot + 1))
    return MeanInterval(float(matrix.mean()), float(low), float(high), p_value, mde80)
