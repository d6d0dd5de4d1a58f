"""Cross entropy of a linear output head, computed in row chunks without the full logits.

Training a small model on CPU, the [tokens, vocab] logits dominate memory traffic: the plain path
writes them, reads and writes them in log_softmax, zero-fills and scatters a gradient of the
same size, and reads it all again in the backward pass. Here each chunk of rows goes through
matmul, log_softmax and its gradient while it is still in cache, and the gradients of the hidden
states and of the head weight are computed right away (the loss is a scalar, so the backward pass
only rescales them). Same FLOPs, a fraction of the memory traffic; rows whose target is the
ignore index are dropped before the head, which makes masked-LM losses cheap as well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 2**21  # logits per chunk (8 MB in fp32): fits in cache next to the weight


class _LinearCrossEntropySum(torch.autograd.Function):
    """Summed cross entropy of ``hidden @ weight.T`` against ``targets`` (no ignored rows)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor):
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        total = hidden.new_zeros((), dtype=torch.float32)
        rows = max(1, CHUNK_ELEMENTS // weight.shape[0])
        for start in range(0, hidden.shape[0], rows):
            chunk, chunk_targets = hidden[start : start + rows], targets[start : start + rows]
            log_probs = torch.log_softmax(chunk @ weight.T, dim=-1)
            picked = log_probs.gather(1, chunk_targets[:, None])
            total -= picked.sum()
            if need_hidden or need_weight:
                # d(-log p_t)/d logits = softmax - one_hot(t)
                grad_logits = log_probs.exp_()
                grad_logits.scatter_(1, chunk_targets[:, None], picked.exp() - 1)
                if need_hidden:
                    torch.mm(grad_logits, weight, out=grad_hidden[start : start + rows])
                if need_weight:
                    grad_weight.addmm_(grad_logits.T, chunk)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            None if grad_hidden is None else grad_hidden * grad_total,
            None if grad_weight is None else grad_weight * grad_total,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``F.cross_entropy(hidden @ weight.T, targets, ignore_index=-100, reduction=reduction)``.

    ``hidden`` [N, d], ``weight`` [V, d], ``targets`` [N]; ``reduction`` is "mean" (over the rows
    that carry a target; NaN when none does, like torch) or "sum". Under autocast the plain path
    runs (logits in fp32), since the chunked one would fix the matmul precision itself.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r} is unknown; expected 'mean' or 'sum'")
    if torch.is_autocast_enabled(hidden.device.type):
        logits = F.linear(hidden, weight).float()
        return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction=reduction)
    keep = targets != IGNORE_INDEX
    total = _LinearCrossEntropySum.apply(hidden[keep], weight, targets[keep])
    return total / keep.sum() if reduction == "mean" else total
