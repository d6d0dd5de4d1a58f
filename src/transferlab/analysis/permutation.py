"""Paired sign-flip permutation test on a [seed, example] matrix of differences A - B.

Flipping the sign of a difference swaps the labels A and B; the test asks how often a random
relabelling gives a mean difference at least as far from 0 as the observed one. What may be
relabelled independently decides which null hypothesis is tested:

``unit="seed"``: flip whole rows. Null: the A run and the B run of each seed are exchangeable
    (the variants do not differ, whatever the seed does). This is the valid test of the *variants*
    when runs differ by seed effects, but it has only 2^S relabellings: with 5 seeds the smallest
    two-sided p is 2/32 = 0.0625, with 2 seeds 0.5.
``unit="example"``: flip whole columns. Null: on every example, A and B are exchangeable *for these
    trained runs*. Seeds are held fixed, so this is a test of these particular models, not of the
    variants; it is anti-conservative for the variants when seed effects exist.
``unit="pair"``: flip every (seed, example) cell independently. Null: every single difference is
    symmetric around 0 and independent of the others; it ignores both the seed and the example
    correlation, so it is the most anti-conservative for the variants. Included because it is the
    classic per-item paired test of two fixed models (one seed each).

All relabellings are enumerated when there are at most ``n_permutations`` of them (an exact p);
otherwise ``n_permutations`` random ones are drawn and the observed labelling is counted as one of
them, ``p = (1 + hits) / (1 + n_permutations)``, so p is never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from transferlab.analysis.matrix import as_seed_example_matrix

Unit = Literal["seed", "example", "pair"]
_CHUNK_CELLS = 4_000_000  # permutation x unit signs drawn at once


@dataclass(frozen=True)
class SignFlipTest:
    """Two-sided p-value, the unit flipped and the n behind it (``exact``: all relabellings)."""

    p_value: float
    unit: str
    n_relabellings: int
    exact: bool
    n_seeds: int
    n_examples: int


def sign_flip_test(
    differences: ArrayLike,
    unit: Unit = "seed",
    n_permutations: int = 10_000,
    seed: int = 0,
) -> SignFlipTest:
    """Sign-flip test of mean(A - B) == 0 on [n_seeds, n_examples] differences; nulls: module doc."""
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be positive, got {n_permutations}")
    matrix = as_seed_example_matrix(differences, "differences")
    sums = _unit_sums(matrix, unit)
    # Relative slack so that relabellings equal to the observed statistic up to rounding count.
    threshold = abs(sums.sum()) - 1e-12 * np.abs(sums).sum()
    n_units = sums.size
    if 2**n_units <= n_permutations:
        p_value = _count_at_least(sums, _all_signs(n_units), threshold) / 2**n_units
        return SignFlipTest(p_value, unit, 2**n_units, True, *matrix.shape)
    p_value = _monte_carlo_p(sums, threshold, n_permutations, np.random.default_rng(seed))
    return SignFlipTest(p_value, unit, n_permutations, False, *matrix.shape)


def _monte_carlo_p(
    sums: np.ndarray, threshold: float, n_permutations: int, rng: np.random.Generator
) -> float:
    n_units = sums.size
    chunk = max(1, _CHUNK_CELLS // n_units)
    hits = 0
    for start in range(0, n_permutations, chunk):
        size = min(chunk, n_permutations - start)
        signs = rng.integers(0, 2, size=(size, n_units), dtype=np.int8) * 2 - 1
        hits += _count_at_least(sums, signs, threshold)
    return (1 + hits) / (1 + n_permutations)


def _unit_sums(matrix: np.ndarray, unit: Unit) -> np.ndarray:
    """Sum of the differences within each unit that is flipped as a whole."""
    if unit == "seed":
        return matrix.sum(axis=1)
    if unit == "example":
        return matrix.sum(axis=0)
    if unit == "pair":
        return matrix.ravel()
    raise ValueError(f"unknown unit {unit!r}; choose one of seed, example, pair")


def _count_at_least(sums: np.ndarray, signs: np.ndarray, threshold: float) -> int:
    return int((np.abs(signs @ sums) >= threshold).sum())


def _all_signs(n_units: int) -> np.ndarray:
    """Every +-1 sign vector of length ``n_units``, one per row (2^n_units rows)."""
    codes = np.arange(2**n_units)[:, None] >> np.arange(n_units)[None, :]
    return (codes & 1).astype(np.int8) * 2 - 1
