"""The [seed, example] matrix every statistic works on: validation, pivoting and pairing.

Per-example results arrive as a long table, one row per (seed, example_id) of one variant and
task. The statistics need a rectangular float matrix ``values[s, e]``: row ``s`` is one training
seed, column ``e`` one example, and the same column means the same example in every row (examples
are *crossed* with seeds: every seed's model is evaluated on the same items). Missing cells are
handled here, explicitly and with a count, so the statistics themselves can reject NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Rows:
    """Long per-example rows of one variant and task: three equal-length 1-D arrays.

    ``value`` is the per-example number (1/0 correctness or a continuous score); NaN marks a
    missing result and is dropped (and counted) when the rows are pivoted.
    """

    seed: np.ndarray
    example_id: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        for name in ("seed", "example_id", "value"):
            object.__setattr__(self, name, np.asarray(getattr(self, name)))
        lengths = {len(self.seed), len(self.example_id), len(self.value)}
        if self.seed.ndim != 1 or self.example_id.ndim != 1 or self.value.ndim != 1:
            raise ValueError("Rows: seed, example_id and value must be 1-D arrays")
        if len(lengths) != 1:
            raise ValueError(
                f"Rows: seed, example_id and value have different lengths "
                f"({len(self.seed)}, {len(self.example_id)}, {len(self.value)})"
            )
        object.__setattr__(self, "value", self.value.astype(float))


@dataclass(frozen=True)
class SeedExampleMatrix:
    """``values[s, e]`` for ``seeds[s]`` and ``example_ids[e]``; ``n_dropped`` rows were left out."""

    values: np.ndarray
    seeds: np.ndarray
    example_ids: np.ndarray
    n_dropped: int


@dataclass(frozen=True)
class PairedMatrices:
    """Two variants' matrices on the same seeds and examples, cell for cell."""

    a: np.ndarray
    b: np.ndarray
    seeds: np.ndarray
    example_ids: np.ndarray
    n_dropped_a: int
    n_dropped_b: int


def as_seed_example_matrix(values: ArrayLike, name: str = "values") -> np.ndarray:
    """Validate ``values`` as a finite float matrix [n_seeds, n_examples]; 1-D means one seed."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [n_seeds, n_examples] (or 1-D for one seed), got shape "
            f"{array.shape}"
        )
    if array.size < 2:
        raise ValueError(f"{name} needs at least 2 values for an interval, got shape {array.shape}")
    n_missing = int(np.isnan(array).sum())
    if n_missing:
        raise ValueError(
            f"{name} contains NaN ({n_missing} of {array.size} entries); pivot long rows with "
            f"transferlab.analysis.pivot (drops incomplete examples, counted) or remove them"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains infinite entries; every value must be finite")
    return array


def pivot(rows: Rows) -> SeedExampleMatrix:
    """Turn one variant's long rows into a rectangular matrix.

    Rows with a NaN value are missing. An example missing for any seed is dropped for every seed
    (the matrix must be rectangular, and a column must mean the same item in every row); all rows
    left out are counted in ``n_dropped``.
    """
    if rows.value.size == 0:
        raise ValueError("pivot: no rows; pass at least one (seed, example_id, value) row")
    seeds = np.unique(rows.seed)
    example_ids = np.unique(rows.example_id)
    grid = _grid(rows, seeds, example_ids, "rows")
    complete = ~np.isnan(grid).any(axis=0)
    if not complete.any():
        raise ValueError(
            f"pivot: no example has a value under every seed {seeds.tolist()}; drop the seed "
            "that is missing results or rerun it"
        )
    return _finish(grid[:, complete], seeds, example_ids[complete], len(rows.value))


def align(a: Rows, b: Rows) -> PairedMatrices:
    """Pair two variants' rows by (seed, example_id) for a paired comparison.

    Seeds are paired only when both variants ran them: a seed present for one variant only is
    dropped. An example is kept only if both variants have a value for it under every kept seed.
    ``n_dropped_a`` / ``n_dropped_b`` count the rows of each side that were left out.
    """
    seeds = np.intersect1d(a.seed, b.seed)
    if seeds.size == 0:
        raise ValueError(
            f"align: variants share no seed (A ran {np.unique(a.seed).tolist()}, B ran "
            f"{np.unique(b.seed).tolist()}); a paired comparison needs the same seeds"
        )
    example_ids = np.intersect1d(a.example_id, b.example_id)
    if example_ids.size == 0:
        raise ValueError(
            "align: variants share no example_id; a paired comparison needs the same task items"
        )
    grid_a = _grid(a, seeds, example_ids, "A")
    grid_b = _grid(b, seeds, example_ids, "B")
    complete = ~(np.isnan(grid_a) | np.isnan(grid_b)).any(axis=0)
    if not complete.any():
        raise ValueError(
            "align: no example has a value for both variants under every shared seed "
            f"(shared seeds {seeds.tolist()}); check that both variants ran the same task split"
        )
    a_matrix = _finish(grid_a[:, complete], seeds, example_ids[complete], len(a.value))
    b_matrix = _finish(grid_b[:, complete], seeds, example_ids[complete], len(b.value))
    return PairedMatrices(
        a=a_matrix.values,
        b=b_matrix.values,
        seeds=seeds,
        example_ids=example_ids[complete],
        n_dropped_a=a_matrix.n_dropped,
        n_dropped_b=b_matrix.n_dropped,
    )


def _grid(rows: Rows, seeds: np.ndarray, example_ids: np.ndarray, label: str) -> np.ndarray:
    """Scatter the rows whose keys are in ``seeds`` x ``example_ids`` into a NaN-filled grid."""
    s_pos = np.searchsorted(seeds, rows.seed).clip(max=len(seeds) - 1)
    e_pos = np.searchsorted(example_ids, rows.example_id).clip(max=len(example_ids) - 1)
    keep = (seeds[s_pos] == rows.seed) & (example_ids[e_pos] == rows.example_id)
    flat = s_pos[keep] * len(example_ids) + e_pos[keep]
    if np.unique(flat).size != flat.size:
        raise ValueError(
            f"{label}: a (seed, example_id) pair occurs more than once; keep one row per example "
            "and seed (one variant and task at a time)"
        )
    grid = np.full(len(seeds) * len(example_ids), np.nan)
    grid[flat] = rows.value[keep]
    return grid.reshape(len(seeds), len(example_ids))


def _finish(
    values: np.ndarray, seeds: np.ndarray, example_ids: np.ndarray, n_rows: int
) -> SeedExampleMatrix:
    """The matrix with the count of rows (out of ``n_rows``) that did not make it in."""
    return SeedExampleMatrix(values, seeds, example_ids, n_dropped=n_rows - values.size)
