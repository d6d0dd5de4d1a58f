"""Coverage of the 95% intervals on simulated experiments with a known true mean.

Each regime simulates ``N_EXPERIMENTS`` experiments of a two-level crossed model
``y[s, e] = mu + seed[s] + example[e] + noise[s, e]`` (seed ~ N(0, sigma_seed), example ~
N(0, sigma_example), noise ~ N(0, sigma_noise)), draws new seed and example effects for every
experiment, and counts how often the interval contains ``mu``.

Monte Carlo tolerance: with 1000 experiments the coverage of an exact 95% interval has a standard
error of sqrt(0.95 * 0.05 / 1000) = 0.0069; the lower edge 0.925 is 3.6 standard errors below
0.95. The upper edge 0.99 allows for the deliberate conservativeness of the "t" method with two
seeds (the seed part gets t with 1 df; when examples dominate that covers ~0.987, see
``intervals.py``) and fails a method that is uselessly wide. The simulations are seeded, so the
test is deterministic; across other simulation seeds the observed coverage ranged 0.93-0.97
(0.986-0.99 for two seeds with dominant examples).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from transferlab.analysis import compare_paired, estimate_mean

N_EXPERIMENTS = 1000
TRUE_MEAN = 0.5
COVERAGE_BAND = (0.925, 0.99)

# (n_seeds, n_examples, sigma_seed, sigma_example, sigma_noise)
REGIMES = {
    "seed-dominated, 5 seeds": (5, 200, 0.5, 0.2, 1.0),
    "example-dominated, 5 seeds": (5, 200, 0.02, 1.0, 1.0),
    "balanced, 3 seeds": (3, 200, 0.1, 0.3, 1.0),
    "mixed, 2 seeds": (2, 200, 0.1, 0.3, 1.0),
    "examples dominate, 2 seeds": (2, 200, 0.0, 1.0, 1.0),
    "noise only, 5 seeds": (5, 200, 0.0, 0.0, 1.0),
    "one seed, examples only": (1, 300, 0.0, 1.0, 1.0),
}


def _simulate(rng, n_seeds, n_examples, sigma_seed, sigma_example, sigma_noise):
    """[N_EXPERIMENTS, n_seeds, n_examples] draws of the crossed two-level model."""
    shape = (N_EXPERIMENTS, n_seeds, n_examples)
    seed_effect = rng.normal(0.0, sigma_seed, (N_EXPERIMENTS, n_seeds, 1))
    example_effect = rng.normal(0.0, sigma_example, (N_EXPERIMENTS, 1, n_examples))
    return TRUE_MEAN + seed_effect + example_effect + rng.normal(0.0, sigma_noise, shape)


def _coverage(experiments, truth, **kwargs) -> float:
    hits = 0
    for i, values in enumerate(experiments):
        estimate = estimate_mean(values, seed=i, **kwargs)
        hits += estimate.low <= truth <= estimate.high
    return hits / len(experiments)


@pytest.mark.parametrize("regime", list(REGIMES))
def test_t_interval_covers_the_true_mean_about_95_percent(regime):
    experiments = _simulate(np.random.default_rng(1), *REGIMES[regime])
    coverage = _coverage(experiments, TRUE_MEAN)
    assert COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1], (regime, coverage)


def test_percentile_bootstrap_undercovers_with_five_seeds_when_seeds_dominate():
    # Why "t" is the default: resampling 5 seeds shrinks their variance by 4/5 and uses
    # normal-like quantiles instead of t with 4 df, so the plain percentile interval misses.
    experiments = _simulate(np.random.default_rng(1), *REGIMES["seed-dominated, 5 seeds"])
    coverage = _coverage(experiments, TRUE_MEAN, method="percentile", n_boot=500)
    assert coverage < 0.90


def test_percentile_bootstrap_covers_when_examples_dominate():
    experiments = _simulate(np.random.default_rng(2), *REGIMES["example-dominated, 5 seeds"])
    coverage = _coverage(experiments, TRUE_MEAN, method="percentile", n_boot=500)
    assert COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1], coverage


def test_t_interval_covers_the_true_accuracy_of_binary_outcomes():
    # Correctness y ~ Bernoulli(sigmoid(logit(0.6) + seed + example)): a skewed, discrete metric.
    rng = np.random.default_rng(3)
    n_seeds, n_examples, sigma_seed, sigma_example = 5, 300, 0.3, 1.5
    logits = (
        logit(0.6)
        + rng.normal(0.0, sigma_seed, (N_EXPERIMENTS, n_seeds, 1))
        + rng.normal(0.0, sigma_example, (N_EXPERIMENTS, 1, n_examples))
    )
    experiments = (rng.random(logits.shape) < expit(logits)).astype(float)
    # True accuracy E[sigmoid(logit(0.6) + seed + example)]: Gauss-Hermite over the summed effect.
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    sigma_total = np.hypot(sigma_seed, sigma_example)
    truth = float((weights * expit(logit(0.6) + sigma_total * nodes)).sum() / weights.sum())
    coverage = _coverage(experiments, truth, bounds=(0.0, 1.0))
    assert COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1], coverage


def test_paired_difference_interval_covers_the_true_difference():
    # Both variants share seed and example effects (they cancel in A - B); each variant also has
    # its own seed and example deviations, which the difference keeps.
    rng = np.random.default_rng(4)
    n_seeds, n_examples, true_diff = 5, 200, 0.05
    shape = (N_EXPERIMENTS, n_seeds, n_examples)
    shared = rng.normal(0, 1.0, (N_EXPERIMENTS, n_seeds, 1)) + rng.normal(
        0, 1.0, (N_EXPERIMENTS, 1, n_examples)
    )

    def variant():
        return (
            shared
            + rng.normal(0, 0.1, (N_EXPERIMENTS, n_seeds, 1))
            + rng.normal(0, 0.3, (N_EXPERIMENTS, 1, n_examples))
            + rng.normal(0, 0.5, shape)
        )

    a, b = variant() + true_diff, variant()
    hits = 0
    for i in range(N_EXPERIMENTS):
        comparison = compare_paired(a[i], b[i], seed=i)
        hits += comparison.low <= true_diff <= comparison.high
    coverage = hits / N_EXPERIMENTS
    assert COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1], coverage
