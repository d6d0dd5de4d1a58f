"""Variance of a grand mean over crossed seeds and examples, split by where it comes from.

Model: ``y[s, e] = mu + seed[s] + example[e] + noise[s, e]``, independent zero-mean effects with
variances ``sigma_seed^2``, ``sigma_example^2``, ``sigma_noise^2``. Every seed is evaluated on the
same examples, so an example's effect is shared by all rows and cancels out of the differences
between seed means. The grand mean's variance is therefore a sum of two parts,

    Var(mean) = (sigma_seed^2 + sigma_noise^2 / E) / S   +   sigma_example^2 / E
              =   seed part                               +   example part,

estimated from the two-way ANOVA mean squares (MS):

- seed part ``var(seed means) / S = MS_seed / (S E)``, unbiased, with ``S - 1`` degrees of freedom;
- example part ``max(MS_example - MS_noise, 0) / (S E)``, with about ``E - 1`` degrees of freedom.

The seed part is never truncated or split further: with 2-5 seeds its estimate is so noisy that a
small value says little about the true seed variance, and shrinking it is what makes intervals
over few seeds under-cover (tests/test_analysis_coverage.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VarianceParts:
    """The seed and example parts of Var(grand mean), each with its degrees of freedom.

    A part with 0 degrees of freedom (one seed, or one example) is absent and has variance 0.
    """

    seed: float
    seed_df: int
    example: float
    example_df: int


def grand_mean_variance(values: np.ndarray) -> VarianceParts:
    """Seed and example parts of the variance of ``values.mean()`` for a [S, E] matrix."""
    n_seeds, n_examples = values.shape
    row_means = values.mean(axis=1)
    col_means = values.mean(axis=0)
    # One seed (one example): a single random factor, whose variance is the plain one of its means.
    if n_seeds == 1:
        return VarianceParts(0.0, 0, col_means.var(ddof=1) / n_examples, n_examples - 1)
    if n_examples == 1:
        return VarianceParts(row_means.var(ddof=1) / n_seeds, n_seeds - 1, 0.0, 0)
    df_noise = (n_seeds - 1) * (n_examples - 1)
    residual = values - row_means[:, None] - col_means[None, :] + values.mean()
    ms_noise = (residual**2).sum() / df_noise
    ms_seed = n_examples * row_means.var(ddof=1)
    ms_example = n_seeds * col_means.var(ddof=1)
    cells = n_seeds * n_examples
    if ms_seed == 0.0 and ms_example <= ms_noise:
        # Identical seed means and no example component (e.g. two seeds that got the same number
        # of items right): the noise level is then the best available lower bound on Var(mean).
        return VarianceParts(0.0, n_seeds - 1, ms_noise / cells, df_noise)
    return VarianceParts(
        ms_seed / cells, n_seeds - 1, max(ms_example - ms_noise, 0.0) / cells, n_examples - 1
    )
