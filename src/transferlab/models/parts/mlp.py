"""``swiglu``: ``down(silu(gate(x)) * up(x))``, gate and up fused in one projection ``gate_up``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from transferlab.config.registry import MLPS
from transferlab.models.parts.base import Context, MlpPart, State, SublayerModule, sub_state

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig


class SwiGLU(SublayerModule):
    residual_outputs = ("down",)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_up = cfg.linear.build(cfg.d_model, 2 * cfg.ffn_dim)
        self.down = cfg.linear.build(cfg.ffn_dim, cfg.d_model)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


@MLPS.register("swiglu")
class SwigluConfig(MlpPart):
    name: Literal["swiglu"] = "swiglu"

    def default_width(self, d_model: int) -> int:
        # ~8/3 d_model (a multiple of 16): three matrices with the parameters of two 4 d_model.
        return max(16, (8 * d_model // 3 + 15) // 16 * 16)

    def build(self, model: ModelConfig) -> SwiGLU:
        return SwiGLU(model)

    def linear_shapes(self, model: ModelConfig) -> list[tuple[int, int]]:
        return [(model.d_model, 2 * model.ffn_dim), (model.ffn_dim, model.d_model)]

    def hf_config(self, model: ModelConfig) -> dict[str, Any]:
        return {"intermediate_size": model.ffn_dim, "hidden_act": "silu"}

    def hf_weights(self, model: ModelConfig, state: State) -> State:
        gate_up = model.linear.hf_weights(model, sub_state(state, "gate_up."))["weight"]
        gate, up = gate_up.chunk(2, dim=0)
        down = model.linear.hf_weights(model, sub_state(state, "down."))["weight"]
        return {"gate_proj.weight": gate, "up_proj.weight": up, "down_proj.weight": down}
