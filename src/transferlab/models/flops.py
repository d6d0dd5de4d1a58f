"""Parameter and training-FLOP counts of a model, computed from its config alone: the sums over
the block's parts (``models.parts``) plus the embedding, final norm and output head."""

from __future__ import annotations

from typing import NamedTuple

from transferlab.config.schemas import ModelConfig


class ParamCount(NamedTuple):
    total: int
    embedding: int  # vocabulary matrices: the embedding, plus the output head when untied
    non_embedding: int


def _require_vocab(cfg: ModelConfig) -> int:
    if cfg.vocab_size is None:
        raise ValueError(
            "model.vocab_size is not set; it is taken from the tokenizer — "
            "set model.vocab_size to count parameters or FLOPs"
        )
    return cfg.vocab_size


def count_parameters(cfg: ModelConfig) -> ParamCount:
    """The parameter count of ``build_model(cfg)`` (equal to the module's own count)."""
    vocab = _require_vocab(cfg)
    norm = cfg.norm.num_params(cfg.d_model)
    block = cfg.attention.num_params(cfg) + cfg.mlp.num_params(cfg) + 2 * norm
    non_embedding = cfg.n_layers * block + norm
    embedding = vocab * cfg.d_model * (1 if cfg.tie_embeddings else 2)
    return ParamCount(non_embedding + embedding, embedding, non_embedding)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Training FLOPs (forward + backward) per token at context ``seq_len``, PaLM-style. For the
    default parts (mha, swiglu, rmsnorm, dense):

        6 * (n_layers * (4 d^2 + 3 d ffn) + d * vocab) + 12 * n_layers * d * seq_len

    A matmul weight of N entries costs 2N FLOPs per token forward and 4N backward (6N in all);
    the matmul weights are the block linears and the output head (the embedding lookup is not a
    matmul; norms and activations are ignored). Attention scores and the weighted sum cost
    2 * 2 * d * seq_len forward per layer, times 3 for training (see each part's count).
    """
    vocab = _require_vocab(cfg)
    norm = cfg.norm.flops_per_token(cfg.d_model)
    block = (
        cfg.attention.flops_per_token(cfg, seq_len)
        + cfg.mlp.flops_per_token(cfg, seq_len)
        + 2 * norm
    )
    return cfg.n_layers * block + norm + 6 * cfg.d_model * vocab
