"""Running a frozen model over many sequences: where its weights live and how to batch them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s weights live (CPU for a module without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def length_batches(
    lengths: Sequence[int], batch_size: int, same_length: bool = False
) -> list[list[int]]:
    """Indices of ``lengths`` in batches of at most ``batch_size``, longest first.

    Longest first: a batch then holds sequences of similar length (little padding), and an
    out-of-memory shows on the first batch. ``same_length`` never mixes two lengths in a batch,
    so a batch needs no padding at all, which bidirectional attention requires: the model has no
    padding mask, and every position would see the padding.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        full = batches and len(batches[-1]) == batch_size
        if not batches or full or (same_length and lengths[batches[-1][0]] != lengths[i]):
            batches.append([])
        batches[-1].append(i)
    return batches
