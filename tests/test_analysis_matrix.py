"""Long per-example rows to [seed, example] matrices: pivoting, pairing, dropped counts, errors."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.analysis import Rows, align, pivot


def _rows(cells: dict[tuple[int, str], float]) -> Rows:
    keys = list(cells)
    return Rows(
        seed=np.array([s for s, _ in keys]),
        example_id=np.array([e for _, e in keys]),
        value=np.array([cells[k] for k in keys]),
    )


def test_pivot_orders_seeds_and_examples_and_places_every_value():
    rows = _rows({(1, "b"): 4.0, (0, "a"): 1.0, (1, "a"): 3.0, (0, "b"): 2.0})
    matrix = pivot(rows)
    np.testing.assert_array_equal(matrix.values, [[1.0, 2.0], [3.0, 4.0]])
    assert matrix.seeds.tolist() == [0, 1] and matrix.example_ids.tolist() == ["a", "b"]
    assert matrix.n_dropped == 0


def test_pivot_drops_an_example_missing_for_any_seed_and_counts_the_rows():
    cells = {(s, e): float(s * 10 + i) for s in (0, 1) for i, e in enumerate("abc")}
    del cells[(1, "c")]
    cells[(0, "b")] = np.nan  # a NaN value is a missing result too
    matrix = pivot(_rows(cells))
    assert matrix.example_ids.tolist() == ["a"]
    np.testing.assert_array_equal(matrix.values, [[0.0], [10.0]])
    assert matrix.n_dropped == 3  # (0, b) NaN, (1, b), (0, c)


def test_align_pairs_shared_seeds_and_examples_and_counts_what_each_side_lost():
    a = _rows({(s, e): 1.0 for s in (0, 1, 2) for e in ("x", "y", "z")})
    b = _rows({(s, e): 0.0 for s in (0, 1) for e in ("x", "y", "w")})
    paired = align(a, b)
    assert paired.seeds.tolist() == [0, 1] and paired.example_ids.tolist() == ["x", "y"]
    assert paired.a.shape == paired.b.shape == (2, 2)
    assert (paired.a == 1.0).all() and (paired.b == 0.0).all()
    assert (paired.n_dropped_a, paired.n_dropped_b) == (9 - 4, 6 - 4)


def test_align_keeps_cells_paired_by_seed_and_example_not_by_row_order():
    a = _rows({(0, "p"): 1.0, (0, "q"): 2.0, (1, "p"): 3.0, (1, "q"): 4.0})
    b = _rows({(1, "q"): 40.0, (0, "p"): 10.0, (1, "p"): 30.0, (0, "q"): 20.0})
    paired = align(a, b)
    np.testing.assert_array_equal(paired.b, 10 * paired.a)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ({(0, "x"): 1.0}, {(1, "x"): 1.0}, r"share no seed \(A ran \[0\], B ran \[1\]\)"),
        ({(0, "x"): 1.0}, {(0, "y"): 1.0}, "share no example_id"),
        (
            {(0, "x"): 1.0, (1, "y"): 1.0},
            {(0, "x"): 1.0, (1, "y"): 1.0},
            "no example has a value for both variants under every shared seed",
        ),
    ],
)
def test_align_without_anything_to_pair_raises(a, b, message):
    with pytest.raises(ValueError, match=message) as info:
        align(_rows(a), _rows(b))
    assert "\n" not in str(info.value)


def test_duplicate_rows_are_rejected():
    rows = Rows(seed=[0, 0], example_id=["a", "a"], value=[1.0, 0.0])
    with pytest.raises(ValueError, match="occurs more than once"):
        pivot(rows)


def test_rows_of_different_lengths_are_rejected():
    with pytest.raises(ValueError, match=r"different lengths \(2, 1, 2\)"):
        Rows(seed=[0, 1], example_id=["a"], value=[1.0, 0.0])


def test_pivot_without_a_complete_example_raises():
    with pytest.raises(ValueError, match="no example has a value under every seed"):
        pivot(_rows({(0, "a"): 1.0, (1, "b"): 1.0}))
