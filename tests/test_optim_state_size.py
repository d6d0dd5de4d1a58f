"""The training state's size: exact for AdamW and for a sparse layer's parameters and support,
recorded in run_info.json by every run (a resumed one too) and carried into
results/runs.parquet's row of the run."""

from __future__ import annotations

import json
import math

import torch

from transferlab.config import ModelConfig
from transferlab.experiment.planner import PlannedRun
from transferlab.experiment.results import run_summary
from transferlab.models import build_model, count_parameters
from transferlab.optim import AdamWConfig, optimizer_state_bytes, training_state_bytes
from transferlab.train import load_run, train


def _adamw_bytes(model: torch.nn.Module) -> int:
    """Two fp32 moments per trainable number and one fp32 step per tensor (the fused kernel
    keeps the step as a 0-d float32 tensor); a tied weight counts once."""
    params = [p for p in model.parameters() if p.requires_grad]
    return 4 * (2 * sum(p.numel() for p in params) + len(params))


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model(torch.randint(0, 40, (2, 8))).logsumexp(-1).mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # as the engine does: no gradient is left to read


def test_adamw_state_is_two_moments_per_parameter_and_a_step_per_tensor():
    torch.manual_seed(0)
    model = build_model(ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=40))
    optimizer = AdamWConfig().build(model)
    assert optimizer_state_bytes(optimizer) == 0  # created by the first step
    _step(model, optimizer)
    # By hand: embedding 40 x 32; per block two norms of 32, qkv 96 x 32, out 32 x 32, gate_up
    # 192 x 32, down 32 x 96 (d_ff 96); a final norm of 32: 28,064 numbers in 14 tensors.
    per_block = 2 * 32 + 96 * 32 + 32 * 32 + 192 * 32 + 32 * 96
    numbers, tensors = 40 * 32 + 2 * per_block + 32, 1 + 2 * 6 + 1
    assert optimizer_state_bytes(optimizer) == _adamw_bytes(model) == 4 * (2 * numbers + tensors)
    sizes = training_state_bytes(model, optimizer)
    # Parameters and gradients: fp32, the tied embedding once; no persistent buffer (the rotary
    # tables are not saved); state as above; the sum of all four.
    assert sizes.parameter_bytes == sizes.gradient_bytes == 4 * numbers
    assert sizes.buffer_bytes == 0
    assert sizes.optimizer_state_bytes == 4 * (2 * numbers + tensors)
    assert sizes.training_state_bytes == 4 * (4 * numbers + tensors)


def test_a_sparse_layers_support_counts_as_buffer_and_a_frozen_weight_has_no_gradient():
    cfg = ModelConfig(
        d_model=32,
        n_layers=2,
        n_heads=2,
        vocab_size=40,
        linear={"name": "sparse_low_rank", "rank": 4, "density": 0.1},
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    # Per block floor(0.1 * in * out) int32 positions for qkv 32 -> 96, out 32 -> 32,
    # gate_up 32 -> 192 and down 96 -> 32.
    nnz = 2 * sum(math.floor(0.1 * 32 * n) for n in (96, 32, 192, 96))
    optimizer = AdamWConfig().build(model)
    _step(model, optimizer)
    sizes = training_state_bytes(model, optimizer)
    assert sizes.parameter_bytes == sizes.gradient_bytes == 4 * count_parameters(cfg).total
    assert sizes.buffer_bytes == 4 * nnz == 4 * 2660
    assert sizes.optimizer_state_bytes == _adamw_bytes(model)
    model.embed.weight.requires_grad_(False)
    frozen = training_state_bytes(model, optimizer)
    assert frozen.parameter_bytes == sizes.parameter_bytes
    assert frozen.gradient_bytes == sizes.gradient_bytes - 4 * 40 * 32


def test_every_run_records_its_training_state_bytes(tiny_config):
    cfg = tiny_config()
    first = train(cfg, stop_after=2)
    model = load_run(first.run_dir).model
    params = 4 * count_parameters(model.config).total
    expected = {
        "parameter_bytes": params,
        "buffer_bytes": 0,
        "gradient_bytes": params,
        "optimizer_state_bytes": _adamw_bytes(model),
        "training_state_bytes": 2 * params + _adamw_bytes(model),
    }
    assert first.optimizer_state_bytes == expected["optimizer_state_bytes"]
    info = json.loads((first.run_dir / "run_info.json").read_text())
    assert {key: info[key] for key in expected} == expected
    # A resumed call rewrites run_info.json at its start and records the sizes again.
    resumed = train(cfg, resume=True)
    assert resumed.optimizer_state_bytes == expected["optimizer_state_bytes"]
    info = json.loads((first.run_dir / "run_info.json").read_text())
    assert {key: info[key] for key in expected} == expected
    run = PlannedRun(variant="base", seed=0, config=cfg, key="k")
    summary = run_summary(run)
    assert {key: summary[key] for key in expected} == expected
