"""``gelu``: the two-matrix MLP of GPT-2 and BERT, ``down(gelu(up(x)))``, 4 d_model wide.

Llama's MLP is gated, so a model with this part does not export to Hugging Face Llama.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from transferlab.config.registry import MLPS
from transferlab.models.parts.base import Context, MlpPart, SublayerModule

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig


class GeluMLP(SublayerModule):
    residual_outputs = ("down",)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.up = cfg.linear.build(cfg.d_model, cfg.ffn_dim)
        self.down = cfg.linear.build(cfg.ffn_dim, cfg.d_model)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


@MLPS.register("gelu")
class GeluMlpConfig(MlpPart):
    name: Literal["gelu"] = "gelu"

    def default_width(self, d_model: int) -> int:
        return 4 * d_model

    def build(self, model: ModelConfig) -> GeluMLP:
        return GeluMLP(model)

    def linear_shapes(self, model: ModelConfig) -> list[tuple[int, int]]:
        return [(model.d_model, model.ffn_dim), (model.ffn_dim, model.d_model)]

    def hf_unsupported(self, model: ModelConfig) -> str:
        return "Llama's MLP is gated (gate, up, down); a two-matrix GELU MLP has no counterpart"
