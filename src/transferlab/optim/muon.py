"""``muon``: ``torch.optim.Muon`` for the hidden matrices, AdamW for everything else.

Muon (Jordan et al. 2024) keeps a momentum buffer per 2-D weight and replaces each update by its
orthogonalization (a few Newton-Schulz iterations: the singular values go to about 1, between
roughly 0.5 and 1.2). Here it takes the hidden matrices of ``optim.groups`` (the blocks'
projections, the factors ``u``, ``v`` of a ``low_rank`` linear too: they are hidden matrices
like any other); the embedding, the output head, norm gains and biases get AdamW. Fused
projections (``qkv``, ``gate_up``) are orthogonalized as one matrix each.

The learning-rate convention (``adjust_lr``) says what ``lr`` means for the Muon part, whose
orthogonalized update O of an A x B matrix (A outputs, B inputs) has an RMS of about
1 / sqrt(max(A, B)) whatever the gradient's scale:

- ``match_rms_adamw`` (the default here): the update is lr * 0.2 * sqrt(max(A, B)) * O, whose RMS
  is 0.2 * lr, about that of an AdamW update in steady training (Liu et al. 2025, "Muon is
  Scalable for LLM Training"). ``lr`` and ``weight_decay`` then mean what they mean for AdamW:
  one lr serves both parts (``adamw_lr`` defaults to it) and a learning-rate sweep puts Muon and
  AdamW on one axis. That is why it is the default.
- ``original`` (torch's default, Keller Jordan's): the update is lr * sqrt(max(1, A / B)) * O, of
  spectral norm about lr * sqrt(max(1, A / B)); typical lr 0.02, with the AdamW part near 3e-3,
  so set ``adamw_lr`` too.

Weight decay is decoupled in both parts: each step multiplies a weight by 1 - lr * weight_decay
(torch's Muon uses the unadjusted lr). Both parts' groups reach the engine, so the schedule and
each group's ``lr_scale`` apply to both.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from transferlab.config.registry import OPTIMIZERS
from transferlab.optim.adamw import AdamSettings
from transferlab.optim.combined import CombinedOptimizer
from transferlab.optim.groups import param_groups


@OPTIMIZERS.register("muon")
class MuonConfig(AdamSettings):
    """``lr``: the Muon part's (see ``adjust_lr``); ``adamw_lr``: the AdamW part's (default:
    ``lr``); ``betas`` and ``eps``: the AdamW part's."""

    name: Literal["muon"] = "muon"
    adamw_lr: float | None = Field(default=None, gt=0)
    momentum: float = Field(default=0.95, ge=0, lt=1)  # the Muon part's momentum decay
    nesterov: bool = True  # orthogonalize the Nesterov look-ahead of the momentum
    ns_steps: int = Field(default=5, gt=0, lt=100)  # Newton-Schulz iterations per update
    # what lr means for the Muon part: an update of AdamW's RMS (0.2 lr), or torch's scaling
    adjust_lr: Literal["match_rms_adamw", "original"] = "match_rms_adamw"

    def build(self, model: nn.Module) -> CombinedOptimizer:
        if not hasattr(torch.optim, "Muon"):
            raise ValueError(
                f"optimizer muon needs torch.optim.Muon (torch >= 2.9); this is torch "
                f"{torch.__version__}: upgrade torch or choose adamw"
            )
        adamw_lr = self.adamw_lr or self.lr
        groups = param_groups(model, self, separate_hidden=True)
        matrices = [g.torch_group(self.lr) for g in groups if g.hidden]
        others = [g.torch_group(adamw_lr) for g in groups if not g.hidden]
        parts: list[torch.optim.Optimizer] = []
        if matrices:
            parts.append(
                torch.optim.Muon(
                    matrices,
                    lr=self.lr,
                    momentum=self.momentum,
                    nesterov=self.nesterov,
                    ns_steps=self.ns_steps,
                    adjust_lr_fn=self.adjust_lr,
                )
            )
        if others:
            parts.append(
                torch.optim.AdamW(others, lr=adamw_lr, betas=self.betas, eps=self.eps, fused=True)
            )
        return CombinedOptimizer(parts)
