"""``low_rank``: a linear map whose weight is the product ``u @ v`` of two thin factors.

``u`` [out, rank] and ``v`` [rank, in] hold ``rank * (in + out)`` parameters instead of
``in * out``, and the forward applies them one after the other (``x @ v.T @ u.T``), so FLOPs
shrink in the same proportion. With ``linear: {name: low_rank, rank: r}`` every projection of
every block is factorized; the embedding and the output head stay dense.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from transferlab.config.registry import LINEARS
from transferlab.models.parts.base import LinearPart

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig


class LowRankLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.empty(out_features, rank))
        self.v = nn.Parameter(torch.empty(rank, in_features))

    def init_weights(self, std: float) -> None:
        # An entry of u @ v sums rank products, so factors of std (std^2 / rank)^(1/4) give the
        # product the std a dense weight would have.
        factor_std = (std * std / self.v.shape[0]) ** 0.25
        nn.init.normal_(self.u, mean=0.0, std=factor_std)
        nn.init.normal_(self.v, mean=0.0, std=factor_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.v), self.u)


def check_low_rank(rank: int, model: ModelConfig) -> None:
    """Refuse a rank that is not below every projection's smaller side (then B A, or u @ v, is
    no cheaper than the dense weight)."""
    smallest = min(model.d_model, model.ffn_dim)
    if rank >= smallest:
        raise ValueError(
            f"model.linear.rank={rank} is not below min(d_model, ffn_dim)={smallest}, "
            "so some factorized weight would not be low-rank; lower the rank"
        )


@LINEARS.register("low_rank")
class LowRankConfig(LinearPart):
    name: Literal["low_rank"] = "low_rank"
    rank: int = Field(gt=0)  # the inner width of u @ v; below min(d_model, ffn_dim)

    def check(self, model: ModelConfig) -> None:
        check_low_rank(self.rank, model)

    def build(self, in_features: int, out_features: int) -> nn.Module:
        return LowRankLinear(in_features, out_features, self.rank)

    def num_params(self, in_features: int, out_features: int) -> int:
        return self.rank * (in_features + out_features)

    def flops_per_token(self, in_features: int, out_features: int) -> int:
        return 6 * self.num_params(in_features, out_features)

    def hf_unsupported(self, model: ModelConfig) -> str:
        return (
            "Hugging Face Llama has no factorized linear layer, and multiplying the factors out "
            "would export a different, larger model"
        )
