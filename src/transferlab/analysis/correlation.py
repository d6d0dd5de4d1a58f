"""Rank correlation across runs, e.g. final pretraining validation loss vs a downstream metric.

Spearman's rho is the Pearson correlation of the average ranks (tied values share the mean of the
ranks they span), which is what ``scipy.stats.spearmanr`` computes. Its interval is a percentile
bootstrap over runs: resample runs with replacement, recompute rho. A resample in which x or y is
constant has no ranking and is left out of the percentiles. With fewer than ~8 runs the interval
is crude (a resample of 3-5 runs takes only a handful of distinct rho values); it is still more
honest than a bare rho.

Sign convention is the caller's: a lower loss is better, so "lower loss, higher accuracy" shows up
as a negative rho between loss and accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

MIN_RUNS = 3


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman rho over ``n_runs`` runs with its bootstrap interval.

    ``reason`` says why rho is NaN (too few runs, a constant variable), and is None otherwise.
    """

    rho: float
    low: float
    high: float
    n_runs: int
    level: float
    reason: str | None = None


def spearman(
    x: ArrayLike, y: ArrayLike, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> RankCorrelation:
    """Spearman rho of paired per-run values ``x`` and ``y`` with a bootstrap interval over runs.

    Runs where x or y is NaN (e.g. a failed run) are left out; ``n_runs`` counts the runs used.
    """
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_arr.ndim != 1 or x_arr.shape != y_arr.shape:
        raise ValueError(
            f"x and y must be 1-D with one value per run, got shapes {x_arr.shape} and {y_arr.shape}"
        )
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a percentile interval, got {n_boot}")
    present = ~(np.isnan(x_arr) | np.isnan(y_arr))
    x_arr, y_arr = x_arr[present], y_arr[present]
    n_runs = int(x_arr.size)
    reason = _undefined_reason(x_arr, y_arr)
    if reason is not None:
        return RankCorrelation(np.nan, np.nan, np.nan, n_runs, level, reason)
    rho = float(_rank_correlation(x_arr[None, :], y_arr[None, :])[0])
    runs = np.random.default_rng(seed).integers(0, n_runs, size=(n_boot, n_runs))
    replicates = _rank_correlation(x_arr[runs], y_arr[runs])
    replicates = replicates[np.isfinite(replicates)]
    low, high = np.quantile(replicates, [0.5 - level / 2, 0.5 + level / 2])
    return RankCorrelation(rho, float(low), float(high), n_runs, level)


def _undefined_reason(x: np.ndarray, y: np.ndarray) -> str | None:
    if x.size < MIN_RUNS:
        return f"rank correlation needs at least {MIN_RUNS} runs, got {x.size}"
    for name, values in (("x", x), ("y", y)):
        if values.min() == values.max():
            return f"{name} is the same for every run, so it has no ranking"
    return None


def _rank_correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Spearman rho of [n_rows, n_runs] arrays; NaN for rows with a constant variable."""
    x_ranks = stats.rankdata(x, axis=1)
    y_ranks = stats.rankdata(y, axis=1)
    x_centered = x_ranks - x_ranks.mean(axis=1, keepdims=True)
    y_centered = y_ranks - y_ranks.mean(axis=1, keepdims=True)
    numerator = (x_centered * y_centered).sum(axis=1)
    denominator = np.sqrt((x_centered**2).sum(axis=1) * (y_centered**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator
