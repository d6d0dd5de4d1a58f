"""Flatness: the trace of the Hessian of a loss by Hutchinson's estimator, with its interval.

For a random vector v with E[v v^T] = I, E[v^T H v] = tr(H) (Hutchinson 1989). Rademacher
probes (each entry +-1 with probability 1/2) give the smallest variance among such vectors:
Var(v^T H v) = 2 sum_{i != j} H_ij^2, so a diagonal H is estimated exactly by every probe.
H v comes from double backpropagation: g = dL/dw with its graph kept, then d(g . v)/dw = H v,
about the cost of two more backward passes per probe, never forming H.

The loss is given as terms whose sum is the loss (one per micro batch, each already divided by
the whole loss's count, so the sum is a mean over all of it). Every term sees the same probes,
so each probe's sample ``sum_t v^T H_t v = v^T H v`` is of the Hessian of the whole loss, and the
samples are independent given the parameters: the interval is the t interval over the probes
(``estimate_mean`` over one seed, probes as its examples: df = probes - 1). It says how far the
estimate may lie from the trace of *this* loss (these parameters, these data); it says nothing
about another seed's run, which the experiment's comparisons over seeds cover.

Each probe is drawn from its own generator seeded by (seed, probe index), so any term can redraw
it (no probe is stored: one probe is as large as the parameters) and nothing here reads or moves
a global random stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from transferlab.analysis.intervals import estimate_mean


@dataclass(frozen=True)
class TraceEstimate:
    """tr(H) estimated from ``probes`` Rademacher probes, with its ``level`` interval."""

    trace: float
    low: float
    high: float
    probes: int
    terms: int  # the loss terms (micro batches) every probe's sample sums over
    level: float
    samples: tuple[float, ...]  # v^T H v of each probe, in probe order


def rademacher_probe(params: Sequence[torch.Tensor], seed: int, index: int) -> list[torch.Tensor]:
    """Probe ``index`` of ``seed``: one +-1 tensor per parameter (fp32, on its device), drawn on
    the CPU from a generator of its own, so the same (seed, index) gives the same probe on any
    device and in any process."""
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    generator = torch.Generator().manual_seed(int(state))
    probe = []
    for p in params:
        signs = torch.randint(0, 2, p.shape, generator=generator, dtype=torch.float32)
        probe.append((signs * 2 - 1).to(p.device))
    return probe


def hutchinson_trace(
    loss_terms: Iterable[Callable[[], torch.Tensor]],
    params: Sequence[torch.Tensor],
    probes: int,
    seed: int,
    level: float = 0.95,
) -> TraceEstimate:
    """Hutchinson's estimate of the trace of the Hessian of ``sum_t term_t()`` with respect to
    ``params``, from ``probes`` Rademacher probes (at least 2, for an interval).

    Each element of ``loss_terms`` computes one scalar term of the loss (its forward pass runs
    once, and its gradient graph serves every probe); the caller chooses the mode (eval: no
    dropout) and precision the loss is differentiated in.
    """
    if probes < 2:
        raise ValueError(f"probes is {probes}; a trace interval needs at least 2 probes")
    params = list(params)
    samples = np.zeros(probes, dtype=np.float64)
    terms = 0
    for term in loss_terms:
        terms += 1
        grads = torch.autograd.grad(term(), params, create_graph=True, allow_unused=True)
        for index in range(probes):
            samples[index] += _quadratic_form(grads, params, rademacher_probe(params, seed, index))
    if terms == 0:
        raise ValueError("the loss has no terms; give the trace at least one batch")
    estimate = estimate_mean(samples, level=level)
    return TraceEstimate(
        float(samples.mean()),
        estimate.low,
        estimate.high,
        probes,
        terms,
        level,
        tuple(float(s) for s in samples),
    )


def _quadratic_form(
    grads: Sequence[torch.Tensor], params: Sequence[torch.Tensor], probe: Sequence[torch.Tensor]
) -> float:
    """v^T H v from the gradient ``grads`` (with its graph): H v = d(g . v)/dw. A parameter the
    term does not depend on (no gradient, or one that does not depend on the parameters: a
    linear term) contributes 0."""
    pairs = [(g, v) for g, v in zip(grads, probe, strict=True) if g is not None and g.requires_grad]
    if not pairs:
        return 0.0
    dot = sum((g * v).sum() for g, v in pairs)
    hvp = torch.autograd.grad(dot, params, retain_graph=True, allow_unused=True)
    return sum(
        float((h.double() * v.double()).sum())
        for h, v in zip(hvp, probe, strict=True)
        if h is not None
    )
