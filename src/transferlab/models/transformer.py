"""A decoder-only transformer: RoPE, RMSNorm, SwiGLU, optional QK-norm, tied embeddings, SDPA.

Conventions are those of Hugging Face Llama (and Qwen3 for QK-norm), so an exported checkpoint
needs no weight permutation: rotary embeddings rotate the two halves of each head
(``rotate_half``, not interleaved pairs), RMSNorm normalizes in fp32 and then scales, and nothing
has a bias. Two projections are fused for speed (fewer, larger matmuls): ``attn.qkv`` holds the
q, k and v weights stacked in that order, ``mlp.gate_up`` the gate and up weights; the exporter
splits them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.config.schemas import ModelConfig

ATTENTION_KINDS = ("causal", "bidirectional", "prefix")


@dataclass
class ModelOutput:
    """What the model computes before its output head, for an objective to take a loss from.

    ``aux_losses`` are losses a model part adds (a mixture of experts' load balancing, say), each
    a scalar mean over the forward's positions; the objective weighs them into its loss.
    """

    hidden: torch.Tensor  # [B, L, d_model], after the final norm
    head: torch.Tensor  # [vocab, d_model]: logits are hidden @ head.T (reached through wrappers)
    residuals: list[torch.Tensor] | None = None  # with return_hidden: n_layers + 1 tensors
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale, computed in fp32 (as HF ``LlamaRMSNorm``)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused kernel (scale included); a no-op cast for fp32 input.
        normed = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps)
        return normed.to(x.dtype)


def rotary_tables(
    head_dim: int, max_seq_len: int, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape [max_seq_len, head_dim] for the rotate-half convention.

    Frequency ``i`` (``inv_freq = theta^(-2i/d)``) is used by dims ``i`` and ``i + d/2``.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [..., L, H, D] by position: ``x * cos + rotate_half(x) * sin``.

    ``cos``/``sin`` are [L, 1, D] so they broadcast over heads; they are kept in fp32 and cast
    to ``x``'s dtype (bf16 under autocast, as HF does) so q and k are not promoted to fp32.
    """
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    first, second = x.chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return torch.addcmul(x * cos, rotated, sin)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim).unbind(2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            is_causal=is_causal,
        )
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` with gate and up in one matmul."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.ffn_dim, bias=False)
        self.down = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm residual block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, is_causal)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.vocab_size is None:
            raise ValueError(
                "model.vocab_size is not set; it is taken from the tokenizer — "
                "build via the trainer or set model.vocab_size"
            )
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        # Tied: the head reuses ``embed.weight`` in forward, so no second tensor is registered
        # and the state dict holds each weight once (safetensors refuses shared storage).
        self.lm_head = (
            None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        )
        cos, sin = rotary_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        # Non-persistent: derived from the config, so they stay out of checkpoints.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @property
    def output_weight(self) -> nn.Parameter:
        """The [vocab, d_model] matrix that maps the final hidden state to logits."""
        return self.embed.weight if self.lm_head is None else self.lm_head.weight

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """N(0, init_std) for matrices; residual output projections scaled by 1/sqrt(2 n_layers)
        (GPT-2) so the residual stream's variance does not grow with depth; norm scales at 1."""
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        for block in self.blocks:
            nn.init.normal_(block.attn.out.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.down.weight, mean=0.0, std=residual_std)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; ``non_embedding`` leaves out the vocabulary matrices (embedding and,
        when untied, the output head)."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.embed.weight.numel()
            if self.lm_head is not None:
                total -= self.lm_head.weight.numel()
        return total

    def forward(
        self,
        input_ids: torch.Tensor,
        attention: str = "causal",
        prefix_len: torch.Tensor | None = None,
        return_hidden: bool = False,
        output: str = "logits",
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]] | ModelOutput:
        """Logits [B, L, vocab] for ``input_ids`` [B, L]; or, with ``output="features"``, a
        ``ModelOutput`` (the final normed hidden states, before the output head, plus any
        auxiliary losses of the model's parts) from which an objective computes its own loss.

        ``attention``: "causal"; "bidirectional" (every position sees every position); "prefix"
        (positions ``< prefix_len[b]`` see the whole prefix, later ones are causal).
        With ``return_hidden`` also returns the residual stream after the embedding and after each
        block (``n_layers + 1`` tensors [B, L, d_model]); with features they are in ``residuals``.
        Objectives call the model itself (not a helper method) so that DDP sees the forward.
        """
        if output not in ("logits", "features"):
            raise ValueError(f"output={output!r} is unknown; expected 'logits' or 'features'")
        length = input_ids.shape[1]
        if length > self.config.max_seq_len:
            raise ValueError(
                f"input length {length} exceeds model.max_seq_len={self.config.max_seq_len}; "
                "shorten the input or raise model.max_seq_len"
            )
        mask, is_causal = self._attention_mask(attention, prefix_len, length, input_ids.device)
        cos = self.rope_cos[:length, None, :]
        sin = self.rope_sin[:length, None, :]
        x = self.embed(input_ids)
        hidden = [x]
        for block in self.blocks:
            x = block(x, cos, sin, mask, is_causal)
            hidden.append(x)
        normed = self.final_norm(x)
        if output == "features":
            return ModelOutput(normed, self.output_weight, hidden if return_hidden else None)
        logits = F.linear(normed, self.output_weight)
        return (logits, hidden) if return_hidden else logits

    @staticmethod
    def _attention_mask(
        attention: str, prefix_len: torch.Tensor | None, length: int, device: torch.device
    ) -> tuple[torch.Tensor | None, bool]:
        """(boolean mask [B, 1, L, L] where True means "may attend", or None; is_causal)."""
        if attention not in ATTENTION_KINDS:
            raise ValueError(
                f"attention={attention!r} is unknown; expected one of {ATTENTION_KINDS}"
            )
        if (attention == "prefix") != (prefix_len is not None):
            raise ValueError('prefix_len is required with attention="prefix" and only there')
        if attention == "causal":
            return None, True
        if attention == "bidirectional":
            return None, False
        pos = torch.arange(length, device=device)
        causal = pos[None, :] <= pos[:, None]  # [L (query), L (key)]
        # A key inside the prefix is visible to every query; later queries see it causally anyway.
        in_prefix = pos[None, None, :] < prefix_len.to(device)[:, None, None]  # [B, 1, L]
        return (causal[None] | in_prefix)[:, None], False


def build_model(cfg: ModelConfig) -> Transformer:
    """The model of ``cfg`` with fresh weights (seed with ``torch.manual_seed`` beforehand)."""
    return Transformer(cfg)
