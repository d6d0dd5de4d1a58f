"""The base run of the tiny experiments the tests run end to end: a 16-person bios world, a
one-layer 32-wide model, constant learning rate, a few steps (seconds on 2 cores)."""

from __future__ import annotations

from typing import Any


def tiny_base(steps: int, every: int | None = None, **trainer: Any) -> dict[str, Any]:
    """The base run config: ``steps`` steps, validation and checkpoints every ``every`` steps
    (default: at the end only); ``trainer`` adds or replaces trainer fields."""
    every = every or steps
    return {
        "world": {"name": "bios", "num_people": 16},
        "tokenizer": {"kind": "word"},
        "data": {"seq_len": 32, "val_fraction": 0.1},
        "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
        "schedule": {"name": "constant"},
        "trainer": {
            "max_steps": steps,
            "batch_size": 4,
            "eval_interval": every,
            "eval_batches": 1,
            "checkpoint_interval": every,
            "progress": False,
            **trainer,
        },
    }
