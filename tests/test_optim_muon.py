"""``muon``: which parameters Muon takes, its learning-rate convention, the AdamW part, one
optimizer for the engine (groups, schedule, state_dict), exact resume and training end to end."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from test_train_resume import _assert_same_run
from transferlab.config import ModelConfig
from transferlab.models import build_model
from transferlab.optim import CombinedOptimizer, ConstantConfig, MuonConfig, optimizer_state_bytes
from transferlab.train import read_metrics, train
from transferlab.train.checkpoint import load_train_state
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Engine
from transferlab.train.trainer import Pretraining


def _low_rank_untied() -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(
        d_model=32,
        n_layers=1,
        n_heads=2,
        vocab_size=40,
        tie_embeddings=False,
        linear={"name": "low_rank", "rank": 4},
    )
    return build_model(cfg)


def _names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return sorted(by_id[id(p)] for g in optimizer.param_groups for p in g["params"])


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    model = _low_rank_untied()
    optimizer = MuonConfig().build(model)
    muon, adamw = optimizer.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    assert _names(model, muon) == sorted(
        f"blocks.0.{layer}.{factor}"
        for layer in ("attn.qkv", "attn.out", "mlp.gate_up", "mlp.down")
        for factor in ("u", "v")
    )
    assert _names(model, adamw) == sorted(
        ["embed.weight", "lm_head.weight", "final_norm.weight"]
        + [f"blocks.0.{norm}_norm.weight" for norm in ("attn", "mlp")]
    )


def _one_step(shape: tuple[int, int], grad: torch.Tensor, **options) -> torch.Tensor:
    """The update of one Muon step on a zero matrix of ``shape`` given ``grad``."""
    layer = nn.Linear(shape[1], shape[0], bias=False)
    nn.init.zeros_(layer.weight)
    optimizer = MuonConfig(weight_decay=0.0, **options).build(layer)
    layer.weight.grad = grad.clone()
    optimizer.step()
    return layer.weight.detach().clone()


@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (32, 32)])
def test_the_learning_rate_conventions(shape):
    """match_rms_adamw: the update's RMS is 0.2 * lr; original: its spectral norm is
    lr * sqrt(max(1, A / B)). Both up to the Newton-Schulz iteration, which leaves the
    singular values of the orthogonalized momentum between about 0.5 and 1.2 (not exactly 1);
    the ratio of the two conventions' updates is exact."""
    lr, (a, b) = 0.01, shape
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    matched = _one_step(shape, grad, lr=lr, adjust_lr="match_rms_adamw")
    original = _one_step(shape, grad, lr=lr, adjust_lr="original")
    ratio = 0.2 * math.sqrt(max(a, b)) / math.sqrt(max(1, a / b))
    torch.testing.assert_close(matched, original * ratio, rtol=1e-6, atol=0)
    rms = matched.square().mean().sqrt().item()
    assert 0.75 * 0.2 * lr < rms < 1.0 * 0.2 * lr
    singular = torch.linalg.svdvals(original) / (lr * math.sqrt(max(1, a / b)))
    assert singular.min().item() > 0.45 and singular.max().item() < 1.25
    # The update points against the gradient: it is the orthogonalized -grad.
    assert (original * grad).sum() < 0


def test_the_adamw_part_uses_adamw_lr_and_both_follow_the_schedule():
    model = _low_rank_untied()
    optimizer = MuonConfig(lr=0.02, adamw_lr=0.003, weight_decay=0.0).build(model)
    stub = SimpleNamespace(
        optimizer=optimizer, step=0, lr_multiplier=ConstantConfig(warmup_steps=2).build(4)
    )
    assert Engine._set_lr(stub) == 0.01  # the first group's lr (Muon's), as metrics log it
    muon, adamw = optimizer.parts
    assert {g["lr"] for g in muon.param_groups} == {0.01}
    assert {g["lr"] for g in adamw.param_groups} == {0.0015}
    norm = model.final_norm.weight
    before = norm.detach().clone()
    model(torch.randint(0, 40, (2, 8))).logsumexp(-1).mean().backward()
    optimizer.step()
    # AdamW's first step moves each weight by lr * |g| / (|g| + eps).
    torch.testing.assert_close((norm.detach() - before).abs(), torch.full_like(before, 0.0015))


def _train_steps(model: nn.Module, optimizer, steps: range) -> None:
    for step in steps:
        tokens = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(step))
        model(tokens).logsumexp(-1).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def test_state_dict_has_one_numbering_and_round_trips_exactly():
    model = _low_rank_untied()
    optimizer = MuonConfig().build(model)
    _train_steps(model, optimizer, range(3))
    saved = optimizer.state_dict()
    n_params = len(list(model.parameters()))
    assert sorted(saved["state"]) == list(range(n_params))
    assert [i for g in saved["param_groups"] for i in g["params"]] == list(range(n_params))
    # Muon keeps one momentum buffer per matrix, AdamW two moments and a step per tensor.
    muon_params, adamw_params = (
        [p for g in part.param_groups for p in g["params"]] for part in optimizer.parts
    )
    assert optimizer_state_bytes(optimizer) == 4 * (
        sum(p.numel() for p in muon_params) + sum(2 * p.numel() + 1 for p in adamw_params)
    )

    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": saved}, buffer)
    copy = _low_rank_untied()
    copy_optimizer = MuonConfig().build(copy)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    copy.load_state_dict(loaded["model"])
    copy_optimizer.load_state_dict(loaded["optimizer"])
    _train_steps(model, optimizer, range(3, 6))
    _train_steps(copy, copy_optimizer, range(3, 6))
    for (name, x), y in zip(model.state_dict().items(), copy.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_a_state_of_another_layout_is_refused():
    model = _low_rank_untied()
    optimizer = MuonConfig().build(model)
    only_adamw = CombinedOptimizer([optimizer.parts[1]])
    with pytest.raises(ValueError, match="saved optimizer state has 3 parameter groups but"):
        only_adamw.load_state_dict(optimizer.state_dict())


def test_muon_trains_the_tiny_run_and_resumes_bit_for_bit(tiny_config):
    settings = ("optimizer.name=muon", "optimizer.lr=0.02", "trainer.log_interval=2")
    full = train(tiny_config("name=full", *settings))
    losses = [r["train_loss"] for r in read_metrics(full.run_dir / "metrics.jsonl")]
    assert losses[-1] < losses[0] - 0.3  # 6.18 -> 5.62 in 8 steps (adamw: 6.07)
    first = train(tiny_config("name=split", *settings), stop_after=3)
    assert first.interrupted
    resumed = train(tiny_config("name=split", *settings), resume=True)
    _assert_same_run(resumed, full)


def test_a_child_takes_a_muon_parents_state_with_init_optimizer(tiny_config):
    settings = ("optimizer.name=muon", "optimizer.lr=0.02")
    parent = train(tiny_config("name=parent", *settings))
    child = tiny_config(
        "name=child", *settings, f"init.from_run={parent.run_dir}", "init.optimizer=true"
    )
    optimizer = Pretraining(
        child, DistContext(0, 1, 0, torch.device("cpu")), False
    ).engine.optimizer
    saved = load_train_state(parent.checkpoint)["optimizer"]["state"]
    state = optimizer.state_dict()["state"]
    assert state.keys() == saved.keys()
    for index, tensors in saved.items():
        assert state[index].keys() == tensors.keys()
        for key, tensor in tensors.items():
            assert torch.equal(state[index][key], tensor), (index, key)
