"""Rotary position embeddings in the rotate-half convention of Hugging Face Llama."""

from __future__ import annotations

import torch


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

    ``cos``/``sin`` are [L, 1, D] (or [B, L, 1, D], positions per row) so they broadcast over
    heads; they are kept in fp32 and cast
    to ``x``'s dtype (bf16 under autocast, as HF does) so q and k are not promoted to fp32.
    """
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    first, second = x.chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return torch.addcmul(x * cos, rotated, sin)
