"""Spearman rank correlation across runs: scipy's answer, ties, its interval and undefined cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from transferlab.analysis import spearman


def test_rho_equals_scipy_on_random_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=25)
    y = -0.6 * x + rng.normal(size=25)
    result = spearman(x, y)
    assert result.rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert result.low <= result.rho <= result.high and -1 <= result.low < result.high <= 1
    assert result.n_runs == 25 and result.level == 0.95 and result.reason is None


def test_rho_equals_scipy_with_ties_using_average_ranks():
    x = np.array([3.1, 2.0, 2.0, 5.5, 3.1, 3.1, 1.0, 4.2])
    y = np.array([0.2, 0.4, 0.1, 0.1, 0.3, 0.3, 0.9, 0.1])
    assert spearman(x, y).rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_perfectly_monotone_runs_have_rho_one_and_a_zero_width_interval():
    loss = np.array([3.2, 2.9, 2.5, 2.4, 2.1, 1.9])
    accuracy = 1.0 / loss**2
    result = spearman(loss, accuracy)
    assert result.rho == result.low == result.high == pytest.approx(-1.0)


def test_interval_is_deterministic_in_its_seed_and_narrows_with_more_runs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    assert spearman(x[:10], y[:10], seed=3) == spearman(x[:10], y[:10], seed=3)
    few, many = spearman(x[:10], y[:10]), spearman(x, y)
    assert many.high - many.low < few.high - few.low


def test_fewer_than_three_runs_give_nan_with_a_reason():
    result = spearman([2.1, 2.3], [0.4, 0.2])
    assert np.isnan(result.rho) and np.isnan(result.low) and np.isnan(result.high)
    assert result.n_runs == 2 and "at least 3 runs, got 2" in result.reason


def test_a_constant_variable_gives_nan_with_a_reason():
    result = spearman([2.0, 2.0, 2.0, 2.0], [0.1, 0.2, 0.3, 0.4])
    assert np.isnan(result.rho) and "x is the same for every run" in result.reason


def test_runs_with_a_missing_value_are_left_out_and_not_counted():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    y = np.array([1.0, 3.0, 2.0, np.nan, 4.0, 7.0])
    result = spearman(x, y)
    assert result.n_runs == 4
    assert result.rho == pytest.approx(stats.spearmanr([1, 2, 5, 6], [1, 3, 4, 7]).statistic)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        ([1, 2, 3], [1, 2], {}, r"one value per run, got shapes \(3,\) and \(2,\)"),
        ([1, 2, 3], [1, 2, 3], {"level": 1.5}, "level must be between 0 and 1"),
        ([1, 2, 3], [1, 2, 3], {"n_boot": 5}, "n_boot must be at least 100"),
    ],
)
def test_bad_input_raises_one_line_value_error(x, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spearman(x, y, **kwargs)
