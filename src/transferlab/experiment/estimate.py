"""A rough wall-time estimate of a plan, for ``--dry-run``: training FLOPs over the FLOP/s this
machine reaches on matrix products, discounted by the efficiency small models reach in practice.

The vocabulary size (and so the output layer's cost) is known only once the tokenizer exists. For
a world the estimate builds the data stage (seconds, and cached for the real run); for real
sources, whose data stage may curate and tokenize for minutes, it uses the data stage if it is
already built and else the tokenizer's configured ``vocab_size``, an upper bound. A later stage
reads its first stage's tokenizer, so it has that stage's vocabulary."""

from __future__ import annotations

import time
from functools import lru_cache

import torch

from transferlab.artifacts import is_complete
from transferlab.config import RunConfig
from transferlab.data.prepare import data_dir, prepare_data
from transferlab.experiment.planner import Plan, PlannedRun
from transferlab.models.flops import flops_per_token

# Fraction of the matmul peak a small transformer's training step reaches on CPU (0.53-0.75 for
# the micro to medium presets in benchmarks/train_throughput.py, rounded down); evaluation adds
# about EVAL_OVERHEAD of the training time.
TRAIN_EFFICIENCY = 0.5
EVAL_OVERHEAD = 0.25


@lru_cache(maxsize=1)
def matmul_flops_per_second(size: int = 1024, reps: int = 4) -> float:
    """Best fp32 FLOP/s of one ``size`` x ``size`` product (the first run warms the threads up)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(reps + 1):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def estimate_seconds(plan: Plan) -> float:
    """Seconds to finish the unfinished runs of ``plan`` (done runs cost nothing; a stage that
    several variants share is trained once and counted once)."""
    unique = {run.key: run for run in plan.runs}
    return sum(run_seconds(run, plan) for run in unique.values() if run.status() != "done")


def run_seconds(run: PlannedRun, plan: Plan) -> float:
    """Seconds to train ``run`` (a run of ``plan``) from scratch and evaluate it."""
    cfg = run.config
    model = cfg.model
    if model.vocab_size is None:
        model = model.model_copy(update={"vocab_size": _vocab_size(_first_stage(run, plan))})
    tokens = cfg.trainer.max_steps * cfg.trainer.batch_size * cfg.data.seq_len
    flops = tokens * flops_per_token(model, cfg.data.seq_len)
    return flops / (matmul_flops_per_second() * TRAIN_EFFICIENCY) * (1 + EVAL_OVERHEAD)


def _first_stage(run: PlannedRun, plan: Plan) -> RunConfig:
    """The config of the first stage of ``run``'s chain, whose tokenizer every stage reads."""
    by_key = {r.key: r for r in plan.runs}
    while run.parent is not None:
        run = by_key[run.parent]
    return run.config


def _vocab_size(cfg: RunConfig) -> int:
    if cfg.data.sources and not is_complete(data_dir(cfg)):
        return cfg.tokenizer.vocab_size
    return prepare_data(cfg).vocab_size
