"""Frozen hidden states of a model at the last token of each sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from transferlab.evaluate.base import model_device

Pooling = Literal["last", "mean"]


def pooled_hidden(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    layers: Sequence[int],
    pooling: Pooling = "last",
    batch_size: int = 64,
) -> torch.Tensor:
    """Hidden states [len(layers), N, d] (float32, CPU) of each sequence, at its last token
    (``pooling="last"``) or averaged over its tokens (``"mean"``).

    ``layers`` index the residual stream as ``model(..., return_hidden=True)`` returns it: 0 is
    the embedding output, ``i`` the output of block ``i``, negative counts from the end.
    Sequences are right-padded in batches; causal attention keeps padding out of every real
    position, and the mean leaves padding out.
    """
    if not sequences or any(not seq for seq in sequences):
        raise ValueError("pooled_hidden needs at least one sequence and no empty ones")
    device = model_device(model)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    out: torch.Tensor | None = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            lengths = torch.tensor([len(sequences[i]) for i in rows])
            batch = torch.zeros((len(rows), int(lengths.max())), dtype=torch.long)
            for b, i in enumerate(rows):
                batch[b, : lengths[b]] = torch.tensor(sequences[i])
            _, hidden = model(batch.to(device), return_hidden=True)
            picked = torch.stack([hidden[layer] for layer in layers]).float().cpu()
            if pooling == "last":
                pooled = picked[:, torch.arange(len(rows)), lengths - 1]
            else:
                real = (torch.arange(batch.shape[1])[None, :] < lengths[:, None]).float()
                pooled = (picked * real[None, :, :, None]).sum(2) / lengths[None, :, None]
            if out is None:
                out = torch.empty(len(layers), len(sequences), pooled.shape[-1])
            out[:, rows] = pooled
    return out


def last_token_hidden(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    layers: Sequence[int],
    batch_size: int = 64,
) -> torch.Tensor:
    """``pooled_hidden`` at each sequence's last token."""
    return pooled_hidden(model, sequences, layers, "last", batch_size)
