"""``galore``: AdamW with gradient low-rank projection of the hidden matrices (Zhao et al. 2024,
"GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection").

For a hidden matrix W (m x n) with gradient G the projector P holds the top-``rank`` singular
vectors of G on its smaller side: the left ones (P: m x r, R = P^T G: r x n) when m <= n, else the
right ones (P: n x r, R = G P: m x r). Adam's moments are kept for R, so they hold
r * max(m, n) numbers each instead of m * n, plus P's r * min(m, n). The update is Adam's step on
R (bias-corrected, as ``torch.optim.AdamW`` computes it), projected back (P N or N P^T) and
multiplied by ``scale``; P is recomputed from the current gradient (an SVD) on the 0-based steps
0, T, 2T, ... (T = ``update_proj_gap``), while the moments carry on in the new subspace, as in
the paper. Weight decay is decoupled, as in AdamW: W <- W * (1 - lr * weight_decay).

A hidden matrix whose smaller side is at most ``rank`` is not projected (its moments would be no
smaller, and a full-rank P only rotates the coordinates in which Adam normalizes, so it would not
even be AdamW). It and every other parameter (embeddings, output head, norm gains, biases) go to
a fused ``torch.optim.AdamW`` beside ``GaLoreAdamW`` (one ``CombinedOptimizer``): a GaLore run
whose rank reaches every matrix's smaller side is an AdamW run, bit for bit. The per-parameter
state (moments, P, step) is in ``state_dict()``, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from transferlab.config.registry import OPTIMIZERS
from transferlab.optim.adamw import AdamSettings
from transferlab.optim.combined import CombinedOptimizer
from transferlab.optim.groups import param_groups


@OPTIMIZERS.register("galore")
class GaLoreConfig(AdamSettings):
    """``rank``: r of the projection; ``update_proj_gap``: T, the steps between projector
    refreshes; ``scale``: alpha, the factor on the projected-back update (0.25 in the paper)."""

    name: Literal["galore"] = "galore"
    rank: int = Field(gt=0)
    update_proj_gap: int = Field(default=200, gt=0)
    scale: float = Field(default=0.25, gt=0)

    def build(self, model: nn.Module) -> CombinedOptimizer:
        projected, plain = [], []
        for group in param_groups(model, self, separate_hidden=True):
            if group.hidden:
                matrices, others = group.split(lambda p: projects(p, self.rank))
                projected.append(matrices)
                plain.append(others)
            else:
                plain.append(group)
        projected = [group.torch_group(self.lr) for group in projected if group.params]
        plain = [group.torch_group(self.lr) for group in plain if group.params]
        parts: list[torch.optim.Optimizer] = []
        if projected:
            parts.append(
                GaLoreAdamW(
                    projected,
                    lr=self.lr,
                    rank=self.rank,
                    betas=self.betas,
                    eps=self.eps,
                    update_proj_gap=self.update_proj_gap,
                    scale=self.scale,
                )
            )
        if plain:
            parts.append(
                torch.optim.AdamW(plain, lr=self.lr, betas=self.betas, eps=self.eps, fused=True)
            )
        return CombinedOptimizer(parts)


def projects(param: torch.Tensor, rank: int) -> bool:
    """Whether projecting ``param`` to ``rank`` saves memory: a matrix with both sides longer."""
    return param.ndim == 2 and rank < min(param.shape)


def top_singular_vectors(grad: torch.Tensor, rank: int) -> torch.Tensor:
    """P for ``grad`` (m x n): its top-``rank`` left singular vectors (m x r) when m <= n,
    else its top-``rank`` right singular vectors (n x r)."""
    u, _, vh = torch.linalg.svd(grad.float(), full_matrices=False)
    left = grad.shape[0] <= grad.shape[1]
    return (u[:, :rank] if left else vh[:rank].T).to(grad.dtype).contiguous()


def project(grad: torch.Tensor, projector: torch.Tensor) -> torch.Tensor:
    """The gradient in P's subspace: P^T G (r x n) or G P (m x r)."""
    left = grad.shape[0] <= grad.shape[1]
    return projector.T @ grad if left else grad @ projector


def project_back(update: torch.Tensor, projector: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """An update of the subspace as one of the full matrix (m x n): P N or N P^T."""
    left = shape[0] <= shape[1]
    return projector @ update if left else update @ projector.T


class GaLoreAdamW(torch.optim.Optimizer):
    """AdamW on the gradients of matrices projected to ``rank`` (see the module doc); every
    parameter must be one that ``projects`` (the others belong to a plain AdamW)."""

    def __init__(
        self,
        params: Any,
        lr: float,
        rank: int,
        betas: tuple[float, float],
        eps: float,
        update_proj_gap: int,
        scale: float,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = {
            "lr": lr,
            "rank": rank,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "update_proj_gap": update_proj_gap,
            "scale": scale,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for param in group["params"]:
                if not projects(param, group["rank"]):
                    raise ValueError(
                        f"GaLoreAdamW got a parameter of shape {tuple(param.shape)} it cannot "
                        f"project to rank {group['rank']}; give it to a plain AdamW"
                    )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        state = self.state[param]
        if not state:  # a float32 step tensor, as torch's optimizers keep it
            state["step"] = torch.zeros((), dtype=torch.float32)
        done = int(state["step"].item())  # steps before this one
        if done % group["update_proj_gap"] == 0:
            state["projector"] = top_singular_vectors(param.grad, group["rank"])
        grad = project(param.grad, state["projector"])
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
        state["step"] += 1
        step = done + 1
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # AdamW's arithmetic (torch.optim.AdamW, foreach=False) on the projected gradient, so the
        # moments are exactly those of AdamW fed P^T G (or G P).
        param.mul_(1 - lr * group["weight_decay"])
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(group["eps"])
        direction = project_back(exp_avg / denom, state["projector"], param.shape)
        param.add_(direction, alpha=-step_size * group["scale"])
