"""A decoder-only transformer whose blocks are composed of registered parts (``models.parts``).

The embedding, rotary tables, final norm and output head (tied to the embedding by default) are
the model's own; each block is ``x + attn(attn_norm(x))`` then ``x + mlp(mlp_norm(x))`` with
attention, mlp, norm and linear layers built by the parts ``ModelConfig`` names. The default parts
(mha, swiglu, rmsnorm, dense) give the Llama model (Qwen3 with QK-norm): rotate-half RoPE, RMSNorm
in fp32, SwiGLU, no biases, so an exported checkpoint needs no weight permutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.config.schemas import ModelConfig
from transferlab.models.kv_cache import KVCache
from transferlab.models.parts.base import Context, SublayerModule, init_weights
from transferlab.models.rotary import rotary_tables

ATTENTION_KINDS = ("causal", "bidirectional", "prefix")


@dataclass
class ModelOutput:
    """What the model computes before its output head, for an objective to take a loss from.

    ``aux_losses`` are losses the model's parts add (a mixture of experts' load balancing, say)
    with ``Context.add_aux_loss``, by name: each a scalar mean over the forward's positions,
    averaged over the layers that report it; the objective weighs them into its loss.
    """

    hidden: torch.Tensor  # [B, L, d_model], after the final norm
    head: torch.Tensor  # [vocab, d_model]: logits are hidden @ head.T (reached through wrappers)
    residuals: list[torch.Tensor] | None = None  # with return_hidden: n_layers + 1 tensors
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)


class Block(nn.Module):
    """Pre-norm residual block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        # Built in this order, which fixes the order of the random draws of initialization.
        self.attn_norm = cfg.norm.build(cfg.d_model, cfg.norm_eps)
        self.attn = cfg.attention.build(cfg)
        self.mlp_norm = cfg.norm.build(cfg.d_model, cfg.norm_eps)
        self.mlp = cfg.mlp.build(cfg)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), ctx)
        return x + self.mlp(self.mlp_norm(x), ctx)


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
        self.final_norm = cfg.norm.build(cfg.d_model, cfg.norm_eps)
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
        """N(0, init_std) for matrices, norm scales at 1 (``parts.base.init_weights``); then the
        residual output projections of each sublayer (and of sublayers inside one, such as the
        experts of a mixture) are drawn again with std / sqrt(2 n_layers) (GPT-2) so the
        residual stream's variance does not grow with depth."""
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for module in self.modules():
            init_weights(module, std)
        for module in self.modules():  # in construction order: each block's attn, then mlp
            if isinstance(module, SublayerModule):
                for name in module.residual_outputs:
                    init_weights(getattr(module, name), residual_std)

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
        cache: KVCache | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]] | ModelOutput:
        """Logits [B, L, vocab] for ``input_ids`` [B, L]; or, with ``output="features"``, a
        ``ModelOutput`` (the final normed hidden states, before the output head, plus any
        auxiliary losses of the model's parts) from which an objective computes its own loss.

        ``attention``: "causal"; "bidirectional" (every position sees every position); "prefix"
        (positions ``< prefix_len[b]`` see the whole prefix, later ones are causal).
        With ``return_hidden`` also returns the residual stream after the embedding and after each
        block (``n_layers + 1`` tensors [B, L, d_model]); with features they are in ``residuals``.
        Objectives call the model itself (not a helper method) so that DDP sees the forward.

        With a ``cache`` (generation) ``input_ids`` are the tokens after those the cache holds,
        and ``valid`` [B, L] (default all True) is False at padding (``kv_cache``); attention is
        causal, or "prefix" in the first forward: those tokens (the prompt) are the prefix.
        """
        if output not in ("logits", "features"):
            raise ValueError(f"output={output!r} is unknown; expected 'logits' or 'features'")
        length = input_ids.shape[1]
        total = length + (0 if cache is None else cache.length)
        if total > self.config.max_seq_len:
            raise ValueError(
                f"input length {total} exceeds model.max_seq_len={self.config.max_seq_len}; "
                "shorten the input or raise model.max_seq_len"
            )
        if cache is None:
            if valid is not None:
                raise ValueError("valid (a padding mask) is read only with a cache")
            mask, is_causal = self._attention_mask(attention, prefix_len, length, input_ids.device)
            ctx = Context(
                self.rope_cos[:length, None, :], self.rope_sin[:length, None, :], mask, is_causal
            )
        else:
            ctx = self._cached_context(input_ids, attention, cache, valid)
        x = self.embed(input_ids)
        hidden = [x]
        for block in self.blocks:
            x = block(x, ctx)
            hidden.append(x)
        if cache is not None:
            cache.check_updated(len(self.blocks))
        normed = self.final_norm(x)
        if output == "features":
            aux = ctx.aux_losses.means()
            return ModelOutput(normed, self.output_weight, hidden if return_hidden else None, aux)
        logits = F.linear(normed, self.output_weight)
        return (logits, hidden) if return_hidden else logits

    def _cached_context(
        self,
        input_ids: torch.Tensor,
        attention: str,
        cache: KVCache,
        valid: torch.Tensor | None,
    ) -> Context:
        """The context of a forward that extends ``cache``: positions and mask per row. With
        ``attention="prefix"`` (the prompt's forward) the new tokens are the prefix."""
        if attention not in ("causal", "prefix"):
            raise ValueError(
                f'a key/value cache needs attention="causal" or "prefix", not {attention!r}'
            )
        if valid is None:
            valid = torch.ones_like(input_ids, dtype=torch.bool)
        positions, mask = cache.advance(valid, prefix=attention == "prefix")
        cos = self.rope_cos[positions][:, :, None, :]
        sin = self.rope_sin[positions][:, :, None, :]
        return Context(cos, sin, mask, is_causal=False, cache=cache)

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
