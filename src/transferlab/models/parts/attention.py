"""``mha``: multi-head self-attention with rotary embeddings, optional QK-norm, through SDPA.

q, k and v come from one fused projection ``qkv`` (their weights stacked in that order: one
larger matmul is faster than three). With ``model.qk_norm`` each head of q and k goes through the
model's norm part before RoPE, as in Qwen3. Exports as HF Llama's (Qwen3's) ``self_attn``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from transferlab.config.registry import ATTENTIONS
from transferlab.models.parts.base import (
    AttentionPart,
    Context,
    State,
    SublayerModule,
    prefixed,
    sub_state,
)
from transferlab.models.rotary import apply_rotary

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig


class MultiHeadAttention(SublayerModule):
    residual_outputs = ("out",)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.head_dim
        self.qkv = cfg.linear.build(cfg.d_model, 3 * cfg.d_model)
        self.out = cfg.linear.build(cfg.d_model, cfg.d_model)
        self.q_norm = cfg.norm.build(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = cfg.norm.build(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self._heads(x, ctx)
        if ctx.cache is not None:
            k, v = ctx.cache.update(self, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=ctx.mask, is_causal=ctx.is_causal)
        return self.out(y.transpose(1, 2).reshape(batch, length, width))

    def attention_logits(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        """The pre-softmax logits q.k / sqrt(head_dim) [B, H, L, L] that ``forward`` attends
        with, -inf where the mask forbids a (query, key) pair (for stability monitoring)."""
        q, k, _ = self._heads(x, ctx)
        logits = (q @ k.transpose(-1, -2)).float() / math.sqrt(self.head_dim)
        allowed = ctx.mask
        if ctx.is_causal:
            length = x.shape[1]
            allowed = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        return logits if allowed is None else logits.masked_fill(~allowed, -math.inf)

    def _heads(self, x: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, ...]:
        """q, k, v as [B, H, L, head_dim], QK-normed and rotated."""
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim).unbind(2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary(q, ctx.cos, ctx.sin), apply_rotary(k, ctx.cos, ctx.sin)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


@ATTENTIONS.register("mha")
class MhaConfig(AttentionPart):
    name: Literal["mha"] = "mha"

    def build(self, model: ModelConfig) -> MultiHeadAttention:
        return MultiHeadAttention(model)

    def linear_shapes(self, model: ModelConfig) -> list[tuple[int, int]]:
        return [(model.d_model, 3 * model.d_model), (model.d_model, model.d_model)]

    def num_params(self, model: ModelConfig) -> int:
        qk_norm = 2 * model.norm.num_params(model.head_dim) if model.qk_norm else 0
        return super().num_params(model) + qk_norm

    def flops_per_token(self, model: ModelConfig, seq_len: int) -> int:
        """The projections, plus the scores and the weighted sum: 2 * 2 * d_model * seq_len
        forward, times 3 for training, over the full L x L matrix although a causal mask makes
        half of it unnecessary (the PaLM convention)."""
        return super().flops_per_token(model, seq_len) + 12 * model.d_model * seq_len

    def hf_config(self, model: ModelConfig) -> dict[str, Any]:
        return {
            "num_attention_heads": model.n_heads,
            "num_key_value_heads": model.n_heads,
            "head_dim": model.head_dim,
            "attention_bias": False,
        }

    def hf_weights(self, model: ModelConfig, state: State) -> State:
        qkv = model.linear.hf_weights(model, sub_state(state, "qkv."))["weight"]
        q, k, v = qkv.chunk(3, dim=0)
        out = model.linear.hf_weights(model, sub_state(state, "out."))["weight"]
        weights = {"q_proj.weight": q, "k_proj.weight": k, "v_proj.weight": v, "o_proj.weight": out}
        if model.qk_norm:
            for name in ("q_norm", "k_norm"):
                norm = model.norm.hf_weights(model, sub_state(state, f"{name}."))
                weights |= prefixed(f"{name}.", norm)
        return weights
