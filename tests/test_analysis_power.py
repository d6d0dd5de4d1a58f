"""MDE80, the minimum detectable effect at 80% power of a paired comparison: its exact value from
the interval's own variance parts and df, its 1/sqrt(n) shrinkage, and that an effect of that size
is in fact detected in about 80% of simulated experiments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from transferlab.analysis import compare_paired
from transferlab.analysis.bootstrap import bootstrap_means


def _t(quantile: float, df: int) -> float:
    return float(stats.t.ppf(quantile, df))


def test_one_column_mde_is_t_plus_t_times_the_standard_error():
    diffs = np.array([[0.1], [0.3], [0.2], [0.5]])  # four seeds, one value each (a measure)
    result = compare_paired(diffs, np.zeros_like(diffs))
    se = diffs.std(ddof=1) / np.sqrt(4)
    assert result.mde80 == pytest.approx((_t(0.975, 3) + _t(0.8, 3)) * se, rel=1e-9)
    at_90 = compare_paired(diffs, np.zeros_like(diffs), level=0.9)
    assert at_90.mde80 == pytest.approx((_t(0.95, 3) + _t(0.8, 3)) * se, rel=1e-9)


def test_crossed_mde_scales_each_variance_part_by_its_own_df():
    d = np.array([[0.0, 1.0, 3.0], [1.0, 1.5, 5.0]])  # 2 seeds x 3 examples
    seeds, examples = d.shape
    rows, cols, grand = d.mean(axis=1), d.mean(axis=0), d.mean()
    ms_seed = examples * ((rows - grand) ** 2).sum() / (seeds - 1)
    ms_example = seeds * ((cols - grand) ** 2).sum() / (examples - 1)
    residual = d - rows[:, None] - cols[None, :] + grand
    ms_noise = (residual**2).sum() / ((seeds - 1) * (examples - 1))
    seed_part = ms_seed / d.size
    example_part = (ms_example - ms_noise) / d.size
    assert example_part > 0  # both parts count in this matrix

    def reach(quantile: float) -> float:
        return np.sqrt(
            _t(quantile, seeds - 1) ** 2 * seed_part
            + _t(quantile, examples - 1) ** 2 * example_part
        )

    result = compare_paired(d, np.zeros_like(d))
    assert (result.high - result.low) / 2 == pytest.approx(reach(0.975), rel=1e-9)
    assert result.mde80 == pytest.approx(reach(0.975) + reach(0.8), rel=1e-9)


def test_percentile_mde_reads_the_bootstrap_replicates():
    rng = np.random.default_rng(3)
    d = rng.normal(0.2, 1.0, (6, 40))
    result = compare_paired(d, np.zeros_like(d), method="percentile", n_boot=500, seed=7)
    replicates = bootstrap_means(d, 500, np.random.default_rng(7))
    q = np.quantile(replicates, [0.025, 0.975, 0.2, 0.8])
    assert (result.low, result.high) == pytest.approx((q[0], q[1]))
    assert result.mde80 == pytest.approx((q[1] - q[0]) / 2 + (q[3] - q[2]) / 2, rel=1e-12)


def test_mde_of_identical_variants_is_undefined_not_zero():
    """No variation seen: no effect size is known to be detectable (0 would claim every one)."""
    a = np.arange(12.0).reshape(3, 4)
    result = compare_paired(a, a.copy())
    assert (result.low, result.high) == (0.0, 0.0) and np.isnan(result.mde80)


def _seeds_with_spread(n_seeds: int, sd: float) -> np.ndarray:
    """``n_seeds`` per-seed differences with mean 0.1 and sample sd exactly ``sd``."""
    z = np.linspace(-1.0, 1.0, n_seeds)
    return (0.1 + sd * (z - z.mean()) / z.std(ddof=1))[:, None]


@pytest.mark.parametrize("n_seeds", [3, 5, 10, 40])
def test_mde_is_sd_over_sqrt_n_times_the_quantiles(n_seeds):
    d = _seeds_with_spread(n_seeds, sd=0.5)
    mde = compare_paired(d, np.zeros_like(d)).mde80
    quantiles = _t(0.975, n_seeds - 1) + _t(0.8, n_seeds - 1)
    assert mde * np.sqrt(n_seeds) / quantiles == pytest.approx(0.5, rel=1e-9)


def test_four_times_the_seeds_halves_the_mde_once_t_is_near_normal():
    def mde(n_seeds: int) -> float:
        d = _seeds_with_spread(n_seeds, sd=0.5)
        return compare_paired(d, np.zeros_like(d)).mde80

    assert mde(400) / mde(100) == pytest.approx(0.5, rel=0.01)
    # With few seeds the t quantiles shrink too, so the MDE falls faster than 1/sqrt(n).
    assert mde(12) / mde(3) < 0.5


# (seeds, examples, sd of seed effect, sd of example effect, sd of noise) of the differences.
DESIGNS = [
    (10, 1, 1.0, 0.0, 0.0),  # a measure: one value per seed, one variance part with 9 df
    (1, 300, 0.0, 1.0, 1.0),  # one seed: examples only, 299 df
    (5, 200, 0.05, 1.0, 1.0),  # examples dominate
    (8, 200, 0.3, 0.1, 1.0),  # seeds dominate
]
N_EXPERIMENTS = 2000
# 80% detection over 2000 experiments has a binomial sd of sqrt(0.8 x 0.2 / 2000) = 0.009; the
# tolerance is 3.3 sd, and also covers the t + t formula's small shortfall (the exact
# noncentral-t power of a 9-df one-part design is 0.799).
TOLERANCE = 0.03


def _true_mde(n_seeds: int, n_examples: int, sd_seed: float, sd_example: float, sd_noise: float):
    """MDE80 from the design's true variance parts (what ``compare_paired`` estimates)."""
    if n_seeds == 1:  # the seed effect is then a constant shift; noise counts with examples
        parts = [(0.0, 1), ((sd_example**2 + sd_noise**2) / n_examples, n_examples - 1)]
    else:
        seed_part = (sd_seed**2 + sd_noise**2 / n_examples) / n_seeds
        parts = [(seed_part, n_seeds - 1), (sd_example**2 / n_examples, max(n_examples - 1, 1))]

    def reach(quantile: float) -> float:
        return np.sqrt(sum(_t(quantile, df) ** 2 * part for part, df in parts))

    return reach(0.975) + reach(0.8)


@pytest.mark.parametrize("design", DESIGNS)
def test_an_effect_of_the_mde_is_detected_four_times_in_five(design):
    n_seeds, n_examples, sd_seed, sd_example, sd_noise = design
    effect = _true_mde(*design)
    rng = np.random.default_rng(20240613)
    detected, estimated = 0, []
    for _ in range(N_EXPERIMENTS):
        d = (
            effect
            + rng.normal(0, sd_seed, (n_seeds, 1))
            + rng.normal(0, sd_example, (1, n_examples))
            + rng.normal(0, sd_noise, (n_seeds, n_examples))
        )
        result = compare_paired(d, np.zeros_like(d))
        detected += result.low > 0  # excluded 0 on the right side
        estimated.append(result.mde80)
    assert detected / N_EXPERIMENTS == pytest.approx(0.8, abs=TOLERANCE)
    # Each experiment's own MDE80 estimates the design's (within 10% on average: the SE of few
    # seeds is biased low, sqrt being concave).
    assert np.mean(estimated) == pytest.approx(effect, rel=0.1)
