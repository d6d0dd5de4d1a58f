"""Cross entropy of a linear output head, computed in row chunks without the full logits.

Training a small model on CPU, the [tokens, vocab] logits dominate memory traffic: the plain path
writes them, reads and writes them in log_softmax, zero-fills and scatters a gradient of the
same size, and reads it all again in the backward pass. Here each chunk of rows goes through
matmul, log_softmax and its gradient while it is still in cache, and the gradients of the hidden
states and of the head weight are computed right away (the loss is a scalar, so the backward pass
only rescales them). Same FLOPs, a fraction of the memory traffic; rows whose target is the
ignore index are dropped before the head, which makes masked-LM losses cheap as well.

The same pass can also give the squared log-partition log^2 Z of each row's logits (z-loss,
PaLM; Wortsman et al. 2023): log Z is the logsumexp the softmax already needs, and its gradient
d(log Z)/d logits is the softmax, so d(log^2 Z)/d logits = 2 log Z softmax.

The chunked pass computes its gradients in the forward and differentiates once only; work that
differentiates the loss twice (Hessian-vector products: ``analysis.flatness``) runs inside
``twice_differentiable()``, where the plain path of autograd's own ops is taken instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 2**21  # logits per chunk (8 MB in fp32): fits in cache next to the weight
_PLAIN = ContextVar("plain_cross_entropy", default=False)  # True inside twice_differentiable()


@contextmanager
def twice_differentiable() -> Iterator[None]:
    """Within it, the model's loss can be differentiated twice: the cross entropy takes the plain
    path (full logits, autograd's ops) and attention the math kernel of SDPA (the fused CPU and
    CUDA kernels have no derivative of their backward). Slower, the same values up to rounding."""
    token = _PLAIN.set(True)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        _PLAIN.reset(token)


class _LinearCrossEntropySum(torch.autograd.Function):
    """Summed cross entropy of ``hidden @ weight.T`` against ``targets`` (no ignored rows) and,
    with ``with_z``, the summed log^2 Z of the same logits (else a zero that carries no
    gradient). The gradients of each output are kept apart, so any weighting of the two (and a
    backward through only one) is exact."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, with_z):
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        outputs = 2 if with_z else 1  # gradients kept per output: cross entropy, log^2 Z
        grad_hidden = hidden.new_empty((outputs, *hidden.shape)) if need_hidden else None
        grad_weight = weight.new_zeros((outputs, *weight.shape)) if need_weight else None
        total = hidden.new_zeros((), dtype=torch.float32)
        z_total = hidden.new_zeros((), dtype=torch.float32)
        rows = max(1, CHUNK_ELEMENTS // weight.shape[0])
        for start in range(0, hidden.shape[0], rows):
            chunk, chunk_targets = hidden[start : start + rows], targets[start : start + rows]
            logits = chunk @ weight.T
            if with_z:
                log_z = torch.logsumexp(logits, dim=-1, keepdim=True)
                log_probs = logits.sub_(log_z)
                z_total += log_z.square().sum()
            else:
                log_probs = torch.log_softmax(logits, dim=-1)
            picked = log_probs.gather(1, chunk_targets[:, None])
            total -= picked.sum()
            if not (need_hidden or need_weight):
                continue
            probs = log_probs.exp_()
            # d(log^2 Z)/d logits = 2 log Z softmax, taken before probs turns into the
            # cross entropy's gradient d(-log p_t)/d logits = softmax - one_hot(t)
            grad_z_logits = probs * (2 * log_z) if with_z else None
            grad_logits = probs.scatter_(1, chunk_targets[:, None], picked.exp() - 1)
            for i, grad in enumerate((grad_logits, grad_z_logits)[:outputs]):
                if need_hidden:
                    torch.mm(grad, weight, out=grad_hidden[i, start : start + rows])
                if need_weight:
                    grad_weight[i].addmm_(grad.T, chunk)
        ctx.save_for_backward(grad_hidden, grad_weight)
        if not with_z:
            ctx.mark_non_differentiable(z_total)
        return total, z_total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total: torch.Tensor, grad_z: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            _combine(grad_hidden, grad_total, grad_z),
            _combine(grad_weight, grad_total, grad_z),
            None,
            None,
        )


def _combine(grads: torch.Tensor | None, grad_total: torch.Tensor, grad_z: torch.Tensor):
    """The input's gradient from the per-output ones (``grads`` [outputs, ...])."""
    if grads is None:
        return None
    combined = grads[0] * grad_total
    return combined + grads[1] * grad_z if grads.shape[0] == 2 else combined


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``F.cross_entropy(hidden @ weight.T, targets, ignore_index=-100, reduction=reduction)``.

    ``hidden`` [N, d], ``weight`` [V, d], ``targets`` [N]; ``reduction`` is "mean" (over the rows
    that carry a target; NaN when none does, like torch) or "sum". Under autocast the plain path
    runs (logits in fp32), since the chunked one would fix the matmul precision itself.
    """
    return _linear_losses(hidden, weight, targets, reduction, with_z=False)[0]


def linear_cross_entropy_with_z(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``linear_cross_entropy`` and ``logsumexp(hidden @ weight.T, -1) ** 2`` reduced the same
    way over the same rows (those with a target), from one pass over the logits."""
    loss, log_z_sq = _linear_losses(hidden, weight, targets, reduction, with_z=True)
    return loss, log_z_sq


def _linear_losses(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reduction: str, with_z: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(cross entropy, log^2 Z or None without ``with_z``), both reduced by ``reduction``."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r} is unknown; expected 'mean' or 'sum'")
    keep = targets != IGNORE_INDEX
    if torch.is_autocast_enabled(hidden.device.type) or _PLAIN.get():
        logits = F.linear(hidden, weight).float()
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction=reduction)
        if not with_z:
            return loss, None
        log_z_sq = torch.logsumexp(logits[keep], dim=-1).square()
        return loss, log_z_sq.mean() if reduction == "mean" else log_z_sq.sum()
    total, z_total = _LinearCrossEntropySum.apply(hidden[keep], weight, targets[keep], with_z)
    if not with_z:
        z_total = None
    if reduction == "sum":
        return total, z_total
    count = keep.sum()
    return total / count, None if z_total is None else z_total / count
