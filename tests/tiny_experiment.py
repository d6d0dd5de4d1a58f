"""The base run of the tiny experiments the tests run end to end: a 16-person bios world, a
one-layer 32-wide model, constant learning rate, a few steps (seconds on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transferlab.experiment import run_experiment


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


# Overrides that shrink a recipe's base run to the tiny run above (a one-layer 32-wide model,
# 4 steps of 4 x 32 tokens, validation every 2 steps); a recipe's test adds its own.
SHRUNKEN_RECIPE_RUN = [
    "base.data.seq_len=32",
    "base.model={d_model: 32, n_layers: 1, n_heads: 2}",
    "base.schedule.warmup_steps=1",
    "base.trainer.max_steps=4",
    "base.trainer.batch_size=4",
    "base.trainer.eval_interval=2",
    "base.trainer.checkpoint_interval=4",
    "base.trainer.progress=false",
]


def run_quietly(spec: Any, exp_dir: Path) -> dict[str, Any]:
    """Run the experiment ``spec`` into ``exp_dir`` without its log; return its summary.json."""
    run_experiment(spec, exp_dir, log=lambda _: None)
    return json.loads((exp_dir / "summary.json").read_text())
