"""A tiny run config on the `modular` world (p = 11, half the pairs in training) trained by
``equation_lm`` with the full batch, for the tests of the grokking pieces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlab.config import RunConfig, apply_overrides, validate

MODULAR_WORLD = {"name": "modular", "prime": 11, "train_fraction": 0.5}
TRAIN_PAIRS = 60  # round(0.5 * 121)


def modular_run(out_dir: Path, *overrides: str, steps: int = 20) -> RunConfig:
    """The run, ``steps`` full-batch steps, with dotted ``overrides`` as on the command line."""
    data: dict[str, Any] = {
        "name": "modular",
        "world": MODULAR_WORLD,
        "tokenizer": {"kind": "word"},
        "data": {"seq_len": 7, "val_fraction": 0.1},
        "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
        "objective": {"name": "equation_lm"},
        "optimizer": {"name": "adamw", "lr": 1e-2, "weight_decay": 0.0},
        "schedule": {"name": "constant"},
        "trainer": {
            "max_steps": steps,
            "batch_size": TRAIN_PAIRS,
            "eval_interval": steps,
            "eval_batches": 1,
            "checkpoint_interval": steps,
            "progress": False,
            "out_dir": str(out_dir),
        },
    }
    return validate(RunConfig, apply_overrides(data, list(overrides)))
