"""``rmsnorm``: root-mean-square norm with a learned scale, in fp32 (as HF ``LlamaRMSNorm``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.config.registry import NORMS
from transferlab.models.parts.base import NormPart, State

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def init_weights(self, std: float) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused kernel (scale included); a no-op cast for fp32 input.
        normed = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps)
        return normed.to(x.dtype)


@NORMS.register("rmsnorm")
class RmsNormConfig(NormPart):
    name: Literal["rmsnorm"] = "rmsnorm"

    def build(self, dim: int, eps: float) -> nn.Module:
        return RMSNorm(dim, eps)

    def num_params(self, dim: int) -> int:
        return dim

    def hf_config(self, model: ModelConfig) -> dict[str, Any]:
        return {"rms_norm_eps": model.norm_eps}

    def hf_weights(self, model: ModelConfig, state: State) -> State:
        return {"weight": state["weight"]}
