"""Holm's step-down correction of p-values for a family of comparisons.

Holm controls the family-wise error rate (the chance of any false rejection) at the same level as
Bonferroni, never rejecting less. The adjusted p-value of the k-th smallest of m p-values is
``max over j <= k of min(1, (m - j + 1) * p_(j))``; reject where the adjusted p < alpha.

Verdicts come from intervals, not from p-values, so this does not change them. To control the
family-wise rate of verdicts over m comparisons too, compare at ``level = 1 - 0.05 / m``
(Bonferroni-adjusted intervals).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm-adjusted p-values, in the order given."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_values must all lie in [0, 1] (no NaN)")
    order = np.argsort(p, kind="stable")
    multipliers = np.arange(len(p), 0, -1)  # m, m - 1, ..., 1 for the sorted p-values
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(multipliers * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return adjusted
