"""AdamW parameter groups and learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from transferlab.optim import AdamWConfig, ConstantConfig, CosineConfig, WarmupStableDecayConfig


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 4, bias=True)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight  # tied


def test_adamw_groups_decay_only_matrices_and_count_tied_weights_once():
    model = _Toy()
    opt = AdamWConfig(lr=0.01, weight_decay=0.1).build(model)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model.proj.weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model.embed.weight),
        id(model.proj.bias),
        id(model.norm.weight),
        id(model.norm.bias),
    }
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(model.parameters()))
    assert all(g["initial_lr"] == 0.01 for g in opt.param_groups)


def test_adamw_can_decay_embeddings():
    model = _Toy()
    opt = AdamWConfig(decay_embeddings=True).build(model)
    assert id(model.embed.weight) in {id(p) for p in opt.param_groups[0]["params"]}


def test_warmup_is_linear_and_reaches_one():
    fn = ConstantConfig(warmup_steps=4).build(10)
    assert [fn(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_ends_at_min_ratio_and_is_monotone_after_warmup():
    fn = CosineConfig(warmup_steps=2, min_lr_ratio=0.1).build(12)
    values = [fn(s) for s in range(12)]
    assert values[:2] == [0.5, 1.0]
    assert values[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[1:], values[2:], strict=False))
    midpoint = 2 + (12 - 1 - 2) / 2
    assert fn(int(midpoint)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 9)))


def test_wsd_has_a_plateau_then_a_linear_decay_to_min():
    fn = WarmupStableDecayConfig(warmup_steps=2, decay_fraction=0.25, min_lr_ratio=0.0).build(20)
    values = [fn(s) for s in range(20)]
    assert values[:2] == [0.5, 1.0]
    assert values[2:15] == [1.0] * 13
    assert values[15:] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])


def test_schedule_rejects_warmup_longer_than_training():
    with pytest.raises(ValueError, match="warmup_steps=10 must be less than trainer.max_steps=10"):
        CosineConfig(warmup_steps=10).build(10)


def test_adamw_step_uses_scheduled_lr():
    model = nn.Linear(2, 2, bias=False)
    opt = AdamWConfig(lr=0.1, weight_decay=0.0).build(model)
    fn = ConstantConfig(warmup_steps=2).build(5)
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] * fn(0)
    before = model.weight.detach().clone()
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    # Adam's first step moves each weight by lr (sign of gradient), here 0.1 * 0.5.
    assert torch.allclose(before - model.weight.detach(), torch.full((2, 2), 0.05), atol=1e-6)
