"""The bytes a training run holds besides its activations: parameters, persistent buffers,
gradients and the optimizer's state. Optimizers such as GaLore shrink the state, and
parameterizations such as SLTrain's shrink all of it; these sizes are how a run says by how much.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


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


@dataclass(frozen=True)
class TrainingStateBytes:
    """Exact sizes in bytes; ``training_state_bytes`` is their sum."""

    parameter_bytes: int  # every parameter once (a tied weight counts once)
    buffer_bytes: int  # persistent buffers, e.g. a sparse layer's support indices
    gradient_bytes: int  # one gradient per trainable parameter, in its dtype
    optimizer_state_bytes: int

    @property
    def training_state_bytes(self) -> int:
        return sum(asdict(self).values())

    def as_dict(self) -> dict[str, int]:
        """The four sizes and their sum, as run_info.json records them."""
        return {**asdict(self), "training_state_bytes": self.training_state_bytes}


def training_state_bytes(model: nn.Module, optimizer: Any) -> TrainingStateBytes:
    """What ``model`` and ``optimizer`` hold for training. Gradients are counted from the
    parameters, since backward gives each trainable one a gradient of its shape and dtype (the
    engine frees them after each step, so they cannot be read off afterwards); the optimizer's
    state is read off, so measure it after the first step."""
    params = list(model.parameters())
    owned = {p.data_ptr() for p in params}
    # The state dict holds the parameters and the persistent buffers (not, e.g., rotary tables).
    buffers = {
        t.data_ptr(): t
        for t in model.state_dict(keep_vars=True).values()
        if not isinstance(t, nn.Parameter) and t.data_ptr() not in owned
    }
    return TrainingStateBytes(
        parameter_bytes=_bytes(params),
        buffer_bytes=_bytes(buffers.values()),
        gradient_bytes=_bytes(p for p in params if p.requires_grad),
        optimizer_state_bytes=optimizer_state_bytes(optimizer),
    )


def _bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
