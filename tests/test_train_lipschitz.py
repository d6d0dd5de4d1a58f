"""Lipschitz weight constraints: the projections do exactly what they name, the trainer applies
them after every step, the logged bound is the product of norms, and resume stays exact."""

from __future__ import annotations

import math
from typing import Literal

import pytest
import torch
from torch import nn

from transferlab.config import CALLBACKS, LINEARS, CallbackConfig, ConfigError
from transferlab.models.parts.linear import DenseConfig
from transferlab.models.parts.low_rank import LowRankLinear
from transferlab.train import load_run, read_metrics, train
from transferlab.train.callbacks.lipschitz import (
    DenseMatrix,
    FactoredMatrix,
    branch_matrices,
    lipschitz_bound,
    power_iteration,
    spectral_cap_,
    spectral_normalize_,
)
from transferlab.train.checkpoint import load_train_state
from transferlab.train.engine import Callback, Engine, StepOutput

TIMING = ("tokens_per_s", "elapsed_s")
CAP = 0.3  # below the initial spectral norm of the tiny model's larger matrices (~0.31-0.39)


def with_singular_values(values: list[float], rows: int = 7, cols: int = 5, seed: int = 0):
    """A [rows, cols] matrix U diag(values) V^T with random orthonormal U, V; and U, V."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, len(values), generator=gen))
    v, _ = torch.linalg.qr(torch.randn(cols, len(values), generator=gen))
    return (u * torch.tensor(values)) @ v.T, u, v


# ----------------------------------------------------------------------------- projections
def test_spectral_cap_caps_the_large_singular_values_and_keeps_the_rest_exactly():
    weight, u, v = with_singular_values([3.0, 2.0, 0.5, 0.2])
    param = nn.Parameter(weight.clone())
    spectral_cap_(DenseMatrix(param), 1.0)
    got = torch.linalg.svdvals(param.detach())
    torch.testing.assert_close(got[:4], torch.tensor([1.0, 1.0, 0.5, 0.2]), atol=1e-5, rtol=0)
    # The singular vectors are those of before: only the capped directions changed.
    expected = (u * torch.tensor([1.0, 1.0, 0.5, 0.2])) @ v.T
    torch.testing.assert_close(param.detach(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["normalize", "cap"])
def test_a_matrix_inside_the_constraint_is_untouched(method):
    weight, _, _ = with_singular_values([0.9, 0.4, 0.1])
    param = nn.Parameter(weight.clone())
    before = param.detach().clone()
    if method == "cap":
        spectral_cap_(DenseMatrix(param), 1.0)
    else:
        spectral_normalize_(DenseMatrix(param), float(torch.linalg.matrix_norm(weight, 2)), 1.0)
    assert torch.equal(param.detach(), before)


def test_spectral_normalize_scales_the_whole_matrix_to_the_norm():
    weight, _, _ = with_singular_values([4.0, 2.0, 1.0])
    param = nn.Parameter(weight.clone())
    spectral_normalize_(DenseMatrix(param), 4.0, 0.5)
    torch.testing.assert_close(param.detach(), weight * 0.125)


def test_power_iteration_converges_to_sigma_max_from_below():
    weight, _, v = with_singular_values([2.0, 1.9, 0.3], rows=40, cols=30)
    matrix = DenseMatrix(nn.Parameter(weight))
    start = torch.nn.functional.normalize(torch.ones(30), dim=0)
    _, rough = power_iteration(matrix, start, max_iterations=2)
    vector, sigma = power_iteration(matrix, start, max_iterations=1000)
    assert rough <= sigma <= 2.0 + 1e-6
    assert sigma == pytest.approx(2.0, abs=1e-4)
    assert abs(float(vector @ v[:, 0])) == pytest.approx(1.0, abs=1e-2)  # the top direction


def test_power_iteration_on_a_zero_matrix_stops_at_once():
    start = torch.nn.functional.normalize(torch.ones(3), dim=0)
    vector, sigma = power_iteration(DenseMatrix(nn.Parameter(torch.zeros(4, 3))), start, 10)
    assert sigma == 0.0 and torch.equal(vector, start)


def _factors(seed: int = 0, rank: int = 3):
    gen = torch.Generator().manual_seed(seed)
    u = nn.Parameter(torch.randn(8, rank, generator=gen))
    v = nn.Parameter(torch.randn(rank, 6, generator=gen))
    return u, v


def test_a_low_rank_product_is_capped_through_its_factors():
    u, v = _factors()
    before = torch.linalg.svdvals(u.detach() @ v.detach())[:3]
    cap = float(before[0] + before[1]) / 2  # between the first and the second
    u_before = u.detach().clone()
    spectral_cap_(FactoredMatrix(u, v), cap)
    after = torch.linalg.svdvals(u.detach() @ v.detach())[:3]
    torch.testing.assert_close(after, torch.tensor([cap, *before[1:]]), atol=1e-4, rtol=1e-5)
    assert torch.equal(u.detach(), u_before)  # the excess came off v alone


def test_a_low_rank_product_is_normalized_by_scaling_both_factors_alike():
    u, v = _factors(seed=1)
    u0, v0 = u.detach().clone(), v.detach().clone()
    sigma = float(torch.linalg.matrix_norm(u0 @ v0, 2))
    spectral_normalize_(FactoredMatrix(u, v), sigma, 1.0)
    root = (1.0 / sigma) ** 0.5
    torch.testing.assert_close(u.detach(), u0 * root)
    torch.testing.assert_close(v.detach(), v0 * root)
    assert float(torch.linalg.matrix_norm(u.detach() @ v.detach(), 2)) == pytest.approx(1.0)


def test_the_bound_is_the_product_over_branches_of_one_plus_the_norm_product():
    norms = {(0, "attn"): [2.0, 3.0], (0, "mlp"): [0.5], (1, "attn"): [1.0, 1.0]}
    assert lipschitz_bound(norms) == (1 + 6.0) * (1 + 0.5) * (1 + 1.0)


def test_a_matrix_outside_a_linear_layer_is_refused_naming_it():
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.table = nn.Parameter(torch.zeros(4, 4))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.mlp = Odd(), nn.Sequential(LowRankLinear(4, 4, 2))

    model = nn.Module()
    model.blocks = nn.ModuleList([Block()])
    with pytest.raises(ValueError, match=r"lipschitz: blocks\.0\.attn\.table is a matrix outside"):
        branch_matrices(model)
    model.blocks[0].attn.table = None
    found = branch_matrices(model)
    assert {key: list(names) for key, names in found.items()} == {
        (0, "attn"): ["blocks.0.attn.proj"],
        (0, "mlp"): ["blocks.0.mlp.0"],
    }


# ----------------------------------------------------------------------------- config
@LINEARS.register("test_other_linear")
class OtherLinearConfig(DenseConfig):
    name: Literal["test_other_linear"] = "test_other_linear"


def test_a_linear_part_without_a_constraint_is_refused_before_training(tiny_config):
    with pytest.raises(ConfigError, match=r"lipschitz callback constrains dense and low_rank"):
        tiny_config("trainer.callbacks=[{name: lipschitz}]", "model.linear=test_other_linear")


# ----------------------------------------------------------------------------- training
def _callback(method: str, every: int = 1, **extra: object) -> str:
    fields = ", ".join(f"{k}: {v}" for k, v in extra.items())
    more = f", {fields}" if fields else ""
    return f"trainer.callbacks=[{{name: lipschitz, method: {method}, max_norm: {CAP}, every: {every}{more}}}]"


def _branch_norm_products(state: dict[str, torch.Tensor], n_layers: int, low_rank: bool):
    """The spectral norm of each branch's matrices multiplied, from a checkpoint's weights."""

    def norm(name: str) -> float:
        weight = state[f"{name}.u"] @ state[f"{name}.v"] if low_rank else state[f"{name}.weight"]
        return float(torch.linalg.svdvals(weight.double())[0])

    products = []
    for i in range(n_layers):
        products.append(norm(f"blocks.{i}.attn.qkv") * norm(f"blocks.{i}.attn.out"))
        products.append(norm(f"blocks.{i}.mlp.gate_up") * norm(f"blocks.{i}.mlp.down"))
    return products


@pytest.mark.parametrize(
    ("method", "linear"),
    [("spectral_normalize", "dense"), ("spectral_cap", "dense"), ("spectral_cap", "low_rank")],
)
def test_training_keeps_every_matrix_inside_and_logs_the_bound_of_its_weights(
    tiny_config, method, linear
):
    overrides = ["model.n_layers=2", _callback(method)]
    if linear == "low_rank":
        overrides += ["model.linear={name: low_rank, rank: 8}"]
    result = train(tiny_config(*overrides))
    rows = read_metrics(result.run_dir / "metrics.jsonl")
    assert all(r["spectral_norm_max"] <= CAP + 1e-4 for r in rows)
    state = load_run(result.run_dir).model.state_dict()
    products = _branch_norm_products(state, 2, linear == "low_rank")
    assert max(products) <= CAP**2 + 1e-4  # each branch: two matrices inside the cap
    expected = math.prod(1 + p for p in products)
    assert rows[-1]["lipschitz_bound"] == pytest.approx(expected, rel=1e-5)
    # The constraint binds: some matrix sits at the cap.
    assert rows[-1]["spectral_norm_max"] == pytest.approx(CAP, abs=1e-4)


def test_the_head_is_constrained_only_when_asked(tiny_config):
    def head_norm(result) -> float:
        return float(
            torch.linalg.matrix_norm(load_run(result.run_dir).model.output_weight.detach(), 2)
        )

    blocks_only = train(tiny_config(_callback("spectral_cap")))
    with_head = train(tiny_config("name=head", _callback("spectral_cap", head="true")))
    assert head_norm(blocks_only) > CAP + 0.05
    assert head_norm(with_head) <= CAP + 1e-4


class NormProbe(Callback):
    """Logs the largest spectral norm of the blocks' matrices as its on_step_end sees them."""

    name = "test_norm_probe"

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        matrices = [p for n, p in engine.model.named_parameters() if n.startswith("blocks.")]
        norms = [torch.linalg.matrix_norm(p.detach(), 2) for p in matrices if p.ndim == 2]
        engine.row["probe_norm"] = float(max(norms))


@CALLBACKS.register("test_norm_probe")
class NormProbeConfig(CallbackConfig):
    name: Literal["test_norm_probe"] = "test_norm_probe"

    def build(self) -> NormProbe:
        return NormProbe()


def test_every_step_end_hook_sees_the_constrained_weights(tiny_config):
    """The projection runs right after the optimizer step, before any callback's on_step_end
    (so before validation and checkpoints), even a callback listed before it."""
    callbacks = f"[{{name: test_norm_probe}}, {{name: lipschitz, max_norm: {CAP}}}]"
    rows = read_metrics(
        train(tiny_config(f"trainer.callbacks={callbacks}")).run_dir / "metrics.jsonl"
    )
    assert len(rows) == 8 and all(r["probe_norm"] <= CAP + 1e-4 for r in rows)
    plain = read_metrics(
        train(tiny_config("name=plain", "trainer.callbacks=[{name: test_norm_probe}]")).run_dir
        / "metrics.jsonl"
    )
    assert max(r["probe_norm"] for r in plain) > CAP + 0.01  # the cap binds in this run


def test_a_run_with_the_constraint_resumes_bit_for_bit(tiny_config):
    cfg = tiny_config(_callback("spectral_normalize", every=2), "model.n_layers=2")
    whole = train(cfg.model_copy(update={"name": "whole"}))
    part = cfg.model_copy(update={"name": "part"})
    stopped = train(part, stop_after=5)
    assert stopped.interrupted
    vectors = load_train_state(stopped.checkpoint)["callbacks"]["lipschitz"]["vectors"]
    # One power-iteration vector per block matrix (2 layers x qkv, out, gate_up, down).
    assert sorted(v.shape[0] for v in vectors.values()) == [32] * 6 + [96] * 2
    resumed = train(part, resume=True)
    assert _rows(resumed) == _rows(whole)
    for (name, x), (_, y) in zip(
        load_run(whole.run_dir).model.state_dict().items(),
        load_run(resumed.run_dir).model.state_dict().items(),
        strict=True,
    ):
        assert torch.equal(x, y), name


def _rows(result) -> list[dict]:
    rows = read_metrics(result.run_dir / "metrics.jsonl")
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
