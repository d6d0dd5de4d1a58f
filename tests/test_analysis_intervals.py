"""Intervals for one variant's mean: known answers, the bootstrap's structure, determinism, errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats

from transferlab.analysis import estimate_mean
from transferlab.analysis.bootstrap import bootstrap_means
from transferlab.analysis.variance import grand_mean_variance


@pytest.mark.parametrize("method", ["t", "percentile"])
def test_constant_values_give_a_zero_width_interval_at_the_value(method):
    estimate = estimate_mean(np.full((4, 50), 0.3), method=method)
    assert estimate.low == estimate.mean == estimate.high == pytest.approx(0.3)
    assert (estimate.n_seeds, estimate.n_examples) == (4, 50)


@pytest.mark.parametrize("method", ["t", "percentile"])
def test_point_estimate_is_the_sample_mean(method):
    values = np.random.default_rng(0).normal(size=(3, 40))
    estimate = estimate_mean(values, method=method)
    assert estimate.mean == values.mean()
    assert estimate.low < estimate.mean < estimate.high
    assert estimate.level == 0.95 and estimate.method == method


def test_seed_only_variation_gives_the_t_interval_on_seed_means():
    seed_means = np.array([0.2, 0.5, 0.35, 0.6])
    values = np.repeat(seed_means[:, None], 25, axis=1)
    estimate = estimate_mean(values)
    low, high = stats.t.interval(0.95, 3, loc=seed_means.mean(), scale=stats.sem(seed_means))
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)


def test_example_only_variation_gives_the_t_interval_over_examples():
    example_values = np.random.default_rng(1).normal(size=60)
    values = np.tile(example_values, (3, 1))  # every seed scores every example identically
    estimate = estimate_mean(values)
    low, high = stats.t.interval(
        0.95, 59, loc=example_values.mean(), scale=stats.sem(example_values)
    )
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)


def test_one_seed_is_an_example_level_interval_that_flags_missing_seed_variance():
    values = np.random.default_rng(2).normal(size=80)
    estimate = estimate_mean(values)  # 1-D: one seed
    low, high = stats.t.interval(0.95, 79, loc=values.mean(), scale=stats.sem(values))
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)
    assert estimate.n_seeds == 1 and estimate.seed_variance_captured is False
    assert estimate_mean(values.reshape(2, 40)).seed_variance_captured is True


def test_variance_parts_add_up_to_the_crossed_model_variance():
    # Large simulated matrix: the two parts estimate sigma_s^2/S + sigma_n^2/(SE) and sigma_e^2/E.
    rng = np.random.default_rng(3)
    n_seeds, n_examples = 400, 500
    values = (
        rng.normal(0, 2.0, (n_seeds, 1))
        + rng.normal(0, 3.0, (1, n_examples))
        + rng.normal(0, 1.0, (n_seeds, n_examples))
    )
    parts = grand_mean_variance(values)
    assert parts.seed * n_seeds == pytest.approx(4.0 + 1.0 / n_examples, rel=0.15)
    assert parts.example * n_examples == pytest.approx(9.0, rel=0.15)
    assert (parts.seed_df, parts.example_df) == (n_seeds - 1, n_examples - 1)


def test_bootstrap_resamples_seeds_and_shared_examples_as_crossed_factors():
    # Var* of the crossed bootstrap mean is var(alpha)/S + var(beta)/E + var(gamma)/(S E) for the
    # two-way decomposition y = mean + alpha_s + beta_e + gamma_se (population variances). Example
    # indices resampled per seed (nested) would give a much smaller example term here.
    rng = np.random.default_rng(4)
    values = rng.normal(0, 1, (4, 1)) + rng.normal(0, 3, (1, 30)) + rng.normal(0, 0.5, (4, 30))
    alpha = values.mean(axis=1) - values.mean()
    beta = values.mean(axis=0) - values.mean()
    gamma = values - values.mean() - alpha[:, None] - beta[None, :]
    expected = alpha.var() / 4 + beta.var() / 30 + gamma.var() / 120
    replicates = bootstrap_means(values, 40_000, np.random.default_rng(5))
    assert replicates.var() == pytest.approx(expected, rel=0.03)
    assert replicates.mean() == pytest.approx(values.mean(), abs=4 * np.sqrt(expected / 40_000))


def test_bootstrap_of_2000_replicates_on_5_seeds_by_2000_examples_is_fast():
    values = np.random.default_rng(6).random((5, 2000))
    start = time.perf_counter()
    estimate_mean(values, method="percentile", n_boot=2000)
    assert time.perf_counter() - start < 1.0


def test_same_seed_same_interval_and_another_seed_another():
    values = np.random.default_rng(7).normal(size=(5, 100))
    first = estimate_mean(values, method="percentile", seed=11)
    assert estimate_mean(values, method="percentile", seed=11) == first
    other = estimate_mean(values, method="percentile", seed=12)
    assert (other.low, other.high) != (first.low, first.high)


def test_bounds_clip_the_interval_to_the_metrics_range():
    values = np.zeros((2, 100))
    values[0, :3] = 1.0  # accuracy 1.5%: the unclipped t interval reaches below 0
    assert estimate_mean(values).low < 0.0
    clipped = estimate_mean(values, bounds=(0.0, 1.0))
    assert clipped.low == 0.0 and clipped.high < 1.0


def test_wider_level_gives_a_wider_interval():
    values = np.random.default_rng(8).normal(size=(4, 50))
    narrow, wide = estimate_mean(values, level=0.8), estimate_mean(values, level=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, r"NaN \(1 of 4 entries\)"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), {}, "infinite"),
        (np.zeros((2, 2, 2)), {}, "must be 2-D"),
        (np.zeros((1, 1)), {}, "at least 2 values"),
        (np.eye(3), {"method": "bca"}, "unknown interval method 'bca'"),
        (np.eye(3), {"level": 95}, "level must be between 0 and 1"),
        (np.eye(3), {"method": "percentile", "n_boot": 10}, "n_boot must be at least 100"),
    ],
)
def test_bad_input_raises_one_line_value_error(values, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        estimate_mean(values, **kwargs)
    assert "\n" not in str(info.value)
