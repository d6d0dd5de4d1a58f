"""Parameter and training-FLOP counts of a model, computed from its config alone."""

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


def _block_matmul_params(cfg: ModelConfig) -> int:
    """Weights of the linear layers of one block: q, k, v, out, gate, up, down."""
    return 4 * cfg.d_model * cfg.d_model + 3 * cfg.d_model * cfg.ffn_dim


def count_parameters(cfg: ModelConfig) -> ParamCount:
    """The parameter count of ``build_model(cfg)`` (equal to the module's own count)."""
    vocab = _require_vocab(cfg)
    norms = 2 * cfg.d_model + (2 * cfg.head_dim if cfg.qk_norm else 0)
    non_embedding = cfg.n_layers * (_block_matmul_params(cfg) + norms) + cfg.d_model
    embedding = vocab * cfg.d_model * (1 if cfg.tie_embeddings else 2)
    return ParamCount(non_embedding + embedding, embedding, non_embedding)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Training FLOPs (forward + backward) per token at context ``seq_len``, PaLM-style:

        6 * (n_layers * (4 d^2 + 3 d ffn) + d * vocab) + 12 * n_layers * d * seq_len

    A matmul weight of N entries costs 2N FLOPs per token forward and 4N backward (6N in all);
    the matmul weights are the block linears and the output head (the embedding lookup is not a
    matmul; norms and activations are ignored). Attention scores and the weighted sum cost
    2 * 2 * d * seq_len forward per layer, times 3 for training, counted over the full L x L
    matrix even though a causal mask makes half of it unnecessary (the PaLM convention).
    """
    vocab = _require_vocab(cfg)
    matmul_params = cfg.n_layers * _block_matmul_params(cfg) + cfg.d_model * vocab
    attention = 12 * cfg.n_layers * cfg.d_model * seq_len
    return 6 * matmul_params + attention
