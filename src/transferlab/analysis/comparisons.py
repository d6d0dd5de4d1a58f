"""Paired comparison of two variants on the same seeds and examples, with a verdict.

The differences ``d[s, e] = a[s, e] - b[s, e]`` (same seed index, same example) form a [seed,
example] matrix like any other, so their mean gets the same interval as a single variant
(``intervals.py``): seeds and examples are both random, the example indices are shared between the
variants, and with ``method="t"`` the interval keeps its coverage with few seeds. Pairing removes
what both variants share (an item's difficulty, a seed's data order when the experiment reuses
seeds), which is where the power of a paired comparison comes from.

The p-value tests "the mean difference is 0" and is the inversion of the same interval, so it can
never contradict the verdict: with ``min_effect=0`` the verdict is decisive exactly when
``p_value < 1 - level``. (A sign-flip permutation test is in ``permutation.py``; it answers a
narrower question with few seeds, see there.)

The verdict follows from the interval alone. With ``higher_is_better``: "better" when the whole
interval lies above ``+min_effect``, "worse" when it lies below ``-min_effect``, otherwise
"inconclusive". ``min_effect`` (in the metric's units, default 0) is the band of differences too
small to matter: an interval that excludes 0 but reaches into the band is still inconclusive.

``mde80`` is the comparison's power stated: the smallest true difference its interval would tell
from 0 in 80% of repeated experiments with the same seeds x examples, from the same variance parts
and df as the interval (``(t_{1-alpha/2, df} + t_{0.8, df}) x SE`` with one part; see
``intervals.py``). Beside an inconclusive verdict it says what was ruled out: nothing smaller than
it could reliably have shown up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from transferlab.analysis.intervals import Method, mean_interval
from transferlab.analysis.matrix import as_seed_example_matrix

Verdict = Literal["better", "worse", "inconclusive"]


@dataclass(frozen=True)
class Comparison:
    """A - B: mean paired difference, its interval, p-value, verdict, minimum detectable effect
    at 80% power and the n behind them.

    ``diff``, ``low`` and ``high`` are in the metric's units, always A minus B; the verdict reads
    them through ``higher_is_better``. ``mde80`` (same units, >= 0) is a size, either direction.
    """

    diff: float
    low: float
    high: float
    p_value: float
    mde80: float
    verdict: Verdict
    n_seeds: int
    n_examples: int
    level: float
    method: str
    min_effect: float
    higher_is_better: bool
    seed_variance_captured: bool


def compare_paired(
    a: ArrayLike,
    b: ArrayLike,
    higher_is_better: bool = True,
    min_effect: float = 0.0,
    level: float = 0.95,
    method: Method = "t",
    n_boot: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare variant A with B on aligned [n_seeds, n_examples] matrices (see ``matrix.align``)."""
    a_matrix = as_seed_example_matrix(a, "a")
    b_matrix = as_seed_example_matrix(b, "b")
    if a_matrix.shape != b_matrix.shape:
        raise ValueError(
            f"a and b must be aligned cell for cell, got shapes {a_matrix.shape} and "
            f"{b_matrix.shape}; pair long rows with transferlab.analysis.align"
        )
    if min_effect < 0:
        raise ValueError(f"min_effect is a band half-width and must be >= 0, got {min_effect}")
    result = mean_interval(a_matrix - b_matrix, level, method, n_boot, seed)
    return Comparison(
        diff=result.mean,
        low=result.low,
        high=result.high,
        p_value=result.p_value,
        mde80=result.mde80,
        verdict=verdict(result.low, result.high, higher_is_better, min_effect),
        n_seeds=a_matrix.shape[0],
        n_examples=a_matrix.shape[1],
        level=level,
        method=method,
        min_effect=min_effect,
        higher_is_better=higher_is_better,
        seed_variance_captured=a_matrix.shape[0] > 1,
    )


def verdict(low: float, high: float, higher_is_better: bool, min_effect: float = 0.0) -> Verdict:
    """Verdict on A - B from its interval [low, high]: which side of the +-min_effect band."""
    if np.isnan(low) or np.isnan(high):
        return "inconclusive"
    if low > min_effect:
        return "better" if higher_is_better else "worse"
    if high < -min_effect:
        return "worse" if higher_is_better else "better"
    return "inconclusive"
