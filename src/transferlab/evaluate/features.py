"""Frozen hidden states of a model at the last token of each sequence."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transferlab.evaluate.base import model_device


def last_token_hidden(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    layers: Sequence[int],
    batch_size: int = 64,
) -> torch.Tensor:
    """Hidden states [len(layers), N, d] (float32, CPU) at the last token of each sequence.

    ``layers`` index the residual stream as ``model(..., return_hidden=True)`` returns it: 0 is
    the embedding output, ``i`` the output of block ``i``, negative counts from the end.
    Sequences are right-padded in batches; causal attention keeps padding out of every
    position before it.
    """
    if not sequences or any(not seq for seq in sequences):
        raise ValueError("last_token_hidden needs at least one sequence and no empty ones")
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
            picked = torch.stack([hidden[layer] for layer in layers])  # [n_layers, B, L, d]
            last = picked[:, torch.arange(len(rows)), (lengths - 1).to(device)]
            if out is None:
                out = torch.empty(len(layers), len(sequences), last.shape[-1])
            out[:, rows] = last.float().cpu()
    return out
