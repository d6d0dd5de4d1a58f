"""``dense``: a plain ``nn.Linear`` without bias (peft's LoRA wraps exactly these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from torch import nn

from transferlab.config.registry import LINEARS
from transferlab.models.parts.base import LinearPart, State

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig


@LINEARS.register("dense")
class DenseConfig(LinearPart):
    name: Literal["dense"] = "dense"

    def build(self, in_features: int, out_features: int) -> nn.Module:
        return nn.Linear(in_features, out_features, bias=False)

    def num_params(self, in_features: int, out_features: int) -> int:
        return in_features * out_features

    def flops_per_token(self, in_features: int, out_features: int) -> int:
        return 6 * in_features * out_features

    def hf_weights(self, model: ModelConfig, state: State) -> State:
        return {"weight": state["weight"]}
