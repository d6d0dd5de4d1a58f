"""Hierarchical (seeds, then examples) bootstrap of the grand mean of a [seed, example] matrix.

One replicate draws ``n_seeds`` seeds with replacement and ``n_examples`` example indices with
replacement, and takes the mean of ``values[drawn seeds][:, drawn examples]``. The example indices
are *shared* by all drawn seeds: every seed's model saw the same items, so an item's difficulty is
common to all rows (examples are crossed with seeds, not nested in them), and resampling the same
items in every row keeps that structure. It is also what makes a paired comparison paired: the
bootstrap of ``a - b`` resamples the same (seed, example) cells of both variants.

With one seed this is an example-level bootstrap: it says nothing about how a different training
seed would have done.

Vectorized: a replicate's mean is ``w @ values @ v / (S * E)`` with ``w`` and ``v`` the draw counts
of each seed and example, so B replicates cost two matrix products, in chunks that bound memory.
"""

from __future__ import annotations

import numpy as np

_CHUNK_CELLS = 4_000_000  # replicate x example cells held at once (32 MB of float64)


def bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """B hierarchical bootstrap replicates of ``values.mean()`` for a [n_seeds, n_examples] matrix."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be a positive number of bootstrap replicates, got {n_boot}")
    n_seeds, n_examples = values.shape
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot)
    chunk = max(1, _CHUNK_CELLS // n_examples)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        example_counts = _draw_counts(n_examples, stop - start, rng)
        seed_weighted = seed_counts[start:stop] @ values  # [chunk, E]: sum over drawn seeds
        means[start:stop] = np.einsum("be,be->b", seed_weighted, example_counts)
    return means / (n_seeds * n_examples)


def _draw_counts(n: int, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` items is drawn in ``n`` draws with replacement, for each row."""
    draws = rng.integers(0, n, size=(n_rows, n))
    offsets = np.arange(n_rows)[:, None] * n
    return np.bincount((draws + offsets).ravel(), minlength=n_rows * n).reshape(n_rows, n)
