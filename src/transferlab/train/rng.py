"""Random state of a run: derived per-use generators, and global RNG capture for checkpoints.

The trainer draws its own randomness (the objective's masks) from generators seeded afresh from
(run seed, step, micro step, rank), so a resumed run needs no generator state to continue exactly.
The global torch / numpy / Python RNG states are still saved with each checkpoint, in a form that
loads with ``torch.load(weights_only=True)`` (tensors, ints, tuples), for code that uses them.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from transferlab.artifacts import content_key


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that is a pure (hash) function of ``parts``."""
    return int(content_key(*parts), 16) & (2**63 - 1)


def seeded_generator(*parts: int | str) -> torch.Generator:
    """A fresh CPU generator seeded from ``parts``."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def capture_rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gauss),
        "python": random.getstate(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
