"""Several torch optimizers over disjoint parameters, driven as one (Muon's matrices plus the
AdamW of everything else).

The engine sees one optimizer: ``param_groups`` lists every part's groups (the same dicts, so the
schedule's lr reaches them), and ``state_dict()`` has torch's layout, each part's parameters
numbered after the previous part's, so checkpoints, exact resume and ``init.optimizer`` (which
loads a parent's per-parameter state into the child's groups) work as for a single optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


class CombinedOptimizer:
    """``parts`` in order: ``step()`` steps each, ``zero_grad()`` clears each."""

    def __init__(self, parts: Sequence[torch.optim.Optimizer]) -> None:
        if not parts:
            raise ValueError("CombinedOptimizer needs at least one optimizer")
        self.parts = list(parts)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for part in self.parts for group in part.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        state: dict[int, Any] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for part in self.parts:
            saved = part.state_dict()
            state.update({offset + index: value for index, value in saved["state"].items()})
            for group in saved["param_groups"]:
                groups.append({**group, "params": [offset + i for i in group["params"]]})
            offset += sum(len(group["params"]) for group in saved["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_groups = state_dict["param_groups"]
        wanted = sum(len(part.param_groups) for part in self.parts)
        if len(saved_groups) != wanted:
            raise ValueError(
                f"the saved optimizer state has {len(saved_groups)} parameter groups but this "
                f"optimizer has {wanted}; it was saved by another optimizer or model"
            )
        offset, first = 0, 0
        for part in self.parts:
            groups = saved_groups[first : first + len(part.param_groups)]
            first += len(groups)
            count = sum(len(group["params"]) for group in groups)
            part.load_state_dict(
                {
                    "state": {
                        index - offset: value
                        for index, value in state_dict["state"].items()
                        if offset <= index < offset + count
                    },
                    "param_groups": [
                        {**group, "params": [i - offset for i in group["params"]]}
                        for group in groups
                    ],
                }
            )
            offset += count
