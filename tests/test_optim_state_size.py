"""The optimizer state's size: exact for AdamW, recorded in run_info.json by every run (a
resumed one too) and carried into results/runs.parquet's row of the run."""

from __future__ import annotations

import json

import torch

from transferlab.config import ModelConfig
from transferlab.experiment.planner import PlannedRun
from transferlab.experiment.results import run_summary
from transferlab.models import build_model
from transferlab.optim import AdamWConfig, optimizer_state_bytes
from transferlab.train import load_run, train


def _adamw_bytes(model: torch.nn.Module) -> int:
    """Two fp32 moments per trainable number and one fp32 step per tensor (the fused kernel
    keeps the step as a 0-d float32 tensor); a tied weight counts once."""
    params = [p for p in model.parameters() if p.requires_grad]
    return 4 * (2 * sum(p.numel() for p in params) + len(params))


def test_adamw_state_is_two_moments_per_parameter_and_a_step_per_tensor():
    torch.manual_seed(0)
    model = build_model(ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=40))
    optimizer = AdamWConfig().build(model)
    assert optimizer_state_bytes(optimizer) == 0  # created by the first step
    model(torch.randint(0, 40, (2, 8))).logsumexp(-1).mean().backward()
    optimizer.step()
    # By hand: embedding 40 x 32; per block two norms of 32, qkv 96 x 32, out 32 x 32, gate_up
    # 192 x 32, down 32 x 96 (d_ff 96); a final norm of 32: 28,064 numbers in 14 tensors.
    per_block = 2 * 32 + 96 * 32 + 32 * 32 + 192 * 32 + 32 * 96
    numbers, tensors = 40 * 32 + 2 * per_block + 32, 1 + 2 * 6 + 1
    assert optimizer_state_bytes(optimizer) == _adamw_bytes(model) == 4 * (2 * numbers + tensors)


def test_every_run_records_its_optimizer_state_bytes(tiny_config):
    cfg = tiny_config()
    first = train(cfg, stop_after=2)
    expected = _adamw_bytes(load_run(first.run_dir).model)
    assert first.optimizer_state_bytes == expected
    info = json.loads((first.run_dir / "run_info.json").read_text())
    assert info["optimizer_state_bytes"] == expected
    # A resumed call rewrites run_info.json at its start and records the size again.
    resumed = train(cfg, resume=True)
    assert resumed.optimizer_state_bytes == expected
    run = PlannedRun(variant="base", seed=0, config=cfg, key="k")
    assert run_summary(run)["optimizer_state_bytes"] == expected
