"""Frozen hidden states of a model, pooled over each sequence, under the attention it is read with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from transferlab.evaluate.inference import length_batches, model_device

Pooling = Literal["last", "mean"]
Layer = int | Literal["all"]  # a probe's layer: an index into the residual stream, or every one


def pooled_hidden(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    layers: Sequence[int],
    pooling: Pooling = "last",
    batch_size: int = 64,
    attention: str = "causal",
) -> torch.Tensor:
    """Hidden states [len(layers), N, d] (float32, CPU) of each sequence, at its last token
    (``pooling="last"``) or averaged over its tokens (``"mean"``).

    ``layers`` index the residual stream as ``model(..., return_hidden=True)`` returns it: 0 is
    the embedding output, ``i`` the output of block ``i``, negative counts from the end.
    ``attention``: "causal", "bidirectional" (every token sees the whole sequence) or "prefix"
    (the whole sequence is the prefix, so the same as bidirectional). Every sequence is read as
    if alone: causal batches are right-padded (no position sees the positions after it), prefix
    ones too (the prefix ends where the padding starts), bidirectional batches hold one length
    only (there is no padding mask). The mean leaves padding out.
    """
    if not sequences or any(not seq for seq in sequences):
        raise ValueError("pooled_hidden needs at least one sequence and no empty ones")
    device = model_device(model)
    out: torch.Tensor | None = None
    same_length = attention == "bidirectional"
    with torch.inference_mode():
        for rows in length_batches([len(seq) for seq in sequences], batch_size, same_length):
            lengths = torch.tensor([len(sequences[i]) for i in rows])
            batch = torch.zeros((len(rows), int(lengths.max())), dtype=torch.long)
            for b, i in enumerate(rows):
                batch[b, : lengths[b]] = torch.tensor(sequences[i])
            _, hidden = model(batch.to(device), return_hidden=True, **_read_as(attention, lengths))
            picked = torch.stack([hidden[layer] for layer in layers]).float().cpu()
            pooled = pool(picked, lengths, pooling)
            if out is None:
                out = torch.empty(len(layers), len(sequences), pooled.shape[-1])
            out[:, rows] = pooled
    return out


def pool(states: torch.Tensor, lengths: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """States [..., B, L, d] of right-padded rows pooled to [..., B, d]: at each row's last
    real position (``lengths - 1``), or averaged over its ``lengths`` real positions."""
    lengths = lengths.to(states.device)
    if pooling == "last":
        return states[..., torch.arange(len(lengths), device=states.device), lengths - 1, :]
    positions = torch.arange(states.shape[-2], device=states.device)
    real = (positions[None, :] < lengths[:, None]).to(states.dtype)
    return (states * real[:, :, None]).sum(-2) / lengths[:, None].to(states.dtype)


def _read_as(attention: str, lengths: torch.Tensor) -> dict[str, object]:
    """The attention arguments of the forward; causal is the model's default."""
    if attention == "prefix":
        return {"attention": "prefix", "prefix_len": lengths}
    return {} if attention == "causal" else {"attention": attention}


def last_token_hidden(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    layers: Sequence[int],
    batch_size: int = 64,
) -> torch.Tensor:
    """``pooled_hidden`` at each sequence's last token (causal attention)."""
    return pooled_hidden(model, sequences, layers, "last", batch_size)


def probe_layers(model: nn.Module, layer: Layer) -> list[int]:
    """The residual-stream indices (0 = embeddings) ``layer`` names in ``model``: every one for
    ``"all"``, else the one index (negative counts from the end); out of range is an error."""
    n_layers = len(model.blocks)
    if layer == "all":
        return list(range(n_layers + 1))
    if not -(n_layers + 1) <= layer <= n_layers:
        raise ValueError(
            f"layer={layer} is out of range for a model of {n_layers} layers; "
            f"use -{n_layers + 1}..{n_layers} or 'all'"
        )
    return [layer % (n_layers + 1)]
