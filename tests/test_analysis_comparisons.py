"""Paired comparisons: verdicts follow the interval, p-values agree with it; sign-flip and Holm."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.analysis import compare_paired, holm, sign_flip_test, verdict


def _pair(diff: float, seed: int = 0, n_seeds: int = 5, n_examples: int = 200):
    """Two variants sharing seed and example effects, A shifted by ``diff``."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 1, (n_seeds, 1)) + rng.normal(0, 1, (1, n_examples))
    b = shared + rng.normal(0, 0.3, (n_seeds, n_examples))
    a = shared + diff + rng.normal(0, 0.3, (n_seeds, n_examples))
    return a, b


@pytest.mark.parametrize("method", ["t", "percentile"])
def test_clearly_better_flipped_worse_and_equal_inconclusive(method):
    a, b = _pair(0.5)
    better = compare_paired(a, b, method=method)
    assert better.verdict == "better" and better.low > 0 and better.p_value < 0.01
    assert better.diff == pytest.approx((a - b).mean())
    worse = compare_paired(b, a, method=method)
    assert worse.verdict == "worse" and worse.high < 0
    assert worse.diff == pytest.approx(-better.diff)
    same = compare_paired(a, a.copy(), method=method)
    assert same.verdict == "inconclusive" and same.p_value == 1.0
    assert same.low == same.high == 0.0
    assert (better.n_seeds, better.n_examples) == (5, 200)


def test_lower_is_better_reads_the_same_interval_the_other_way():
    a, b = _pair(0.5)  # A has the higher value: worse when the metric is a loss
    higher = compare_paired(a, b)
    lower = compare_paired(a, b, higher_is_better=False)
    assert lower.verdict == "worse" and higher.verdict == "better"
    assert (lower.diff, lower.low, lower.high) == (higher.diff, higher.low, higher.high)
    assert compare_paired(b, a, higher_is_better=False).verdict == "better"


def test_min_effect_turns_a_real_but_negligible_difference_inconclusive():
    a, b = _pair(0.2, n_examples=2000)
    plain = compare_paired(a, b)
    assert plain.verdict == "better" and 0.05 < plain.low < plain.high < 0.4
    assert compare_paired(a, b, min_effect=plain.low / 2).verdict == "better"
    banded = compare_paired(a, b, min_effect=plain.low * 1.01)
    assert banded.verdict == "inconclusive" and banded.min_effect == plain.low * 1.01
    assert banded.p_value == plain.p_value  # the p-value still tests a difference of exactly 0


def test_verdict_is_decisive_exactly_when_p_is_below_one_minus_level():
    # Many small differences close to the detection limit: p and the interval must never disagree.
    disagreements = 0
    for seed in range(60):
        comparison = compare_paired(*_pair(0.02 * (seed % 6), seed=seed, n_seeds=3))
        decisive = comparison.verdict != "inconclusive"
        disagreements += decisive != (comparison.p_value < 0.05)
    assert disagreements == 0


def test_verdict_function_needs_the_whole_interval_beyond_the_band():
    assert verdict(0.1, 0.3, higher_is_better=True) == "better"
    assert verdict(-0.3, -0.1, higher_is_better=True) == "worse"
    assert verdict(-0.1, 0.3, higher_is_better=True) == "inconclusive"
    assert verdict(0.1, 0.3, higher_is_better=False) == "worse"
    assert verdict(0.1, 0.3, higher_is_better=True, min_effect=0.1) == "inconclusive"
    assert verdict(float("nan"), 0.3, higher_is_better=True) == "inconclusive"


def test_percentile_comparison_is_deterministic_in_its_seed():
    a, b = _pair(0.05, n_seeds=3)
    first = compare_paired(a, b, method="percentile", seed=3)
    assert compare_paired(a, b, method="percentile", seed=3) == first


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        (np.zeros((3, 10)), np.zeros((3, 9)), {}, r"aligned cell for cell.*\(3, 10\) and \(3, 9\)"),
        (np.zeros((3, 10)), np.zeros((2, 10)), {}, "transferlab.analysis.align"),
        (np.zeros((3, 10)), np.zeros((3, 10)), {"min_effect": -0.1}, "min_effect"),
        (np.full((2, 2), np.nan), np.zeros((2, 2)), {}, "^a contains NaN"),
    ],
)
def test_bad_comparison_input_raises_one_line_value_error(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        compare_paired(a, b, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("unit", ["seed", "example", "pair"])
def test_sign_flip_on_identical_samples_gives_p_one(unit):
    result = sign_flip_test(np.zeros((5, 50)), unit=unit)
    assert result.p_value == 1.0 and (result.n_seeds, result.n_examples) == (5, 50)


def test_sign_flip_on_a_huge_effect_gives_the_smallest_attainable_p():
    differences = 1.0 + np.random.default_rng(0).normal(0, 0.01, (5, 200))
    n = 2000
    for unit in ("example", "pair"):
        result = sign_flip_test(differences, unit=unit, n_permutations=n)
        assert result.p_value == 1 / (n + 1) < 1 / n
        assert result.n_relabellings == n and not result.exact
    # 5 seeds: all 32 relabellings enumerated; only all-plus and all-minus are as extreme.
    by_seed = sign_flip_test(differences, unit="seed")
    assert by_seed.p_value == 2 / 32 and by_seed.exact and by_seed.n_relabellings == 32


def test_sign_flip_exact_enumeration_known_answer():
    # Seed sums (2, -1, 1): of the 8 relabellings, 6 give |sum| >= 2.
    differences = np.array([[2.0], [-1.0], [1.0]])
    assert sign_flip_test(differences, unit="seed").p_value == 6 / 8


def test_sign_flip_monte_carlo_is_deterministic_and_uniform_under_the_null():
    rng = np.random.default_rng(1)
    differences = rng.normal(size=(2, 100))
    first = sign_flip_test(differences, unit="pair", n_permutations=999, seed=4)
    assert sign_flip_test(differences, unit="pair", n_permutations=999, seed=4) == first
    null_ps = [
        sign_flip_test(rng.normal(size=(1, 30)), unit="pair", n_permutations=199, seed=i).p_value
        for i in range(300)
    ]
    assert 0.02 <= np.mean(np.array(null_ps) < 0.05) <= 0.09  # ~0.05, MC sd 0.013


def test_sign_flip_rejects_an_unknown_unit():
    with pytest.raises(ValueError, match="unknown unit 'run'"):
        sign_flip_test(np.ones((2, 3)), unit="run")


def test_holm_matches_a_hand_computed_example():
    # Sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> max so far 0.06.
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert holm([0.2]).tolist() == [0.2]


def test_holm_rejects_values_that_are_not_p_values():
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        holm([0.1, 1.5])
