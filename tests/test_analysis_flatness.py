"""Hutchinson's trace estimator on losses whose Hessian is known in closed form: exact with a
diagonal Hessian, each probe's sample exactly v^T H v, intervals that cover the true trace about
as often as they claim, and errors that shrink with more probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.analysis.flatness import hutchinson_trace, rademacher_probe


def quadratic(a: torch.Tensor, x: torch.Tensor):
    """The term 0.5 x^T A x, whose Hessian is A (symmetric)."""
    return lambda: 0.5 * x @ a @ x


def symmetric(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    return (m + m.T) / 2


def test_a_diagonal_hessian_is_estimated_exactly_by_every_rademacher_probe():
    a = torch.diag(torch.tensor([3.0, -1.0, 0.5, 7.0]))
    x = torch.ones(4, requires_grad=True)
    est = hutchinson_trace([quadratic(a, x)], [x], probes=5, seed=0)
    assert est.samples == (9.5,) * 5  # v_i^2 = 1, so v^T A v = tr(A) for every probe
    assert (est.trace, est.low, est.high) == (9.5, 9.5, 9.5)
    assert (est.probes, est.terms, est.level) == (5, 1, 0.95)


def test_each_sample_is_the_quadratic_form_of_its_probe_summed_over_the_loss_terms():
    # Linear regression, mean squared error over 12 rows cut into 3 terms (micro batches):
    # H = X^T X / n, and v^T H v = |X v|^2 / n for the probe v that redraws from (seed, index).
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 5, generator=g), torch.randn(12, generator=g)
    w = torch.zeros(5, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)  # the intercept: its own Hessian entries

    def term(rows: slice):
        return lambda: 0.5 * ((x[rows] @ w + b - y[rows]) ** 2).sum() / len(x)

    terms = [term(slice(0, 4)), term(slice(4, 8)), term(slice(8, 12))]
    est = hutchinson_trace(terms, [w, b], probes=6, seed=3)
    design = torch.cat([x, torch.ones(12, 1)], dim=1)
    for index, sample in enumerate(est.samples):
        v = torch.cat(rademacher_probe([w, b], 3, index))
        assert sample == pytest.approx(float((design @ v).square().sum() / 12), rel=1e-6)
    assert est.terms == 3
    # The trace itself: |X|_F^2 / n + 1 (the intercept's diagonal entry).
    truth = float(x.square().sum() / 12 + 1)
    assert est.low <= truth <= est.high


def test_the_interval_covers_the_true_trace_about_95_percent_of_the_time():
    a = symmetric(8, seed=0)
    x = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    truth = float(a.trace())
    covered = [
        est.low <= truth <= est.high
        for est in (
            hutchinson_trace([quadratic(a, x)], [x], probes=10, seed=seed) for seed in range(400)
        )
    ]
    # 400 experiments: 0.95 +- 2.2 standard errors (about 0.011 each).
    assert 0.925 <= np.mean(covered) <= 0.975


def test_more_probes_bring_the_estimate_closer_to_the_truth():
    a = symmetric(10, seed=1)
    x = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    truth = float(a.trace())

    def rms_error(probes: int) -> float:
        errors = [
            hutchinson_trace([quadratic(a, x)], [x], probes=probes, seed=s).trace - truth
            for s in range(60)
        ]
        return float(np.sqrt(np.mean(np.square(errors))))

    # Var(v^T A v) = 2 sum_{i != j} a_ij^2 for Rademacher v: the error's RMS is sqrt(that / P).
    off = a - torch.diag(torch.diag(a))
    spread = float(torch.sqrt(2 * off.square().sum()))
    few, many = rms_error(4), rms_error(64)
    assert many < few / 2.5  # 4x fewer: sqrt(16) in expectation
    assert many == pytest.approx(spread / 8, rel=0.35)


def test_probes_are_reproducible_and_differ_between_indices_and_seeds():
    params = [torch.zeros(3, 4), torch.zeros(7)]
    first = rademacher_probe(params, 5, 0)
    assert all(
        torch.equal(p, q) for p, q in zip(first, rademacher_probe(params, 5, 0), strict=True)
    )
    assert {float(v) for p in first for v in p.flatten()} == {-1.0, 1.0}
    assert not torch.equal(first[0], rademacher_probe(params, 5, 1)[0])
    assert not torch.equal(first[0], rademacher_probe(params, 6, 0)[0])


def test_a_parameter_the_loss_does_not_curve_in_adds_nothing():
    x = torch.ones(3, requires_grad=True)
    unused = torch.ones(2, requires_grad=True)
    linear = torch.ones(2, requires_grad=True)
    est = hutchinson_trace(
        [lambda: (x**2).sum() + linear.sum()], [x, unused, linear], probes=3, seed=0
    )
    assert est.samples == (6.0, 6.0, 6.0)


def test_bad_input_is_refused_in_one_line():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="at least 2 probes"):
        hutchinson_trace([lambda: (x**2).sum()], [x], probes=1, seed=0)
    with pytest.raises(ValueError, match="no terms"):
        hutchinson_trace([], [x], probes=2, seed=0)
