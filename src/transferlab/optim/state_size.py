"""The size of an optimizer's state, which is what optimizers such as GaLore exist to shrink."""

from __future__ import annotations

from typing import Any

import torch


def optimizer_state_bytes(optimizer: Any) -> int:
    """Bytes of every tensor in ``optimizer``'s per-parameter state (moments, projectors, step
    counters kept as tensors); 0 before the first step of an optimizer that creates its state
    lazily, as torch's do."""
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state_dict()["state"].values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )
