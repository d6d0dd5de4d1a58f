"""``galore``: moments in the projected space (r x n), the update is Adam's in P's coordinates
lifted back, the projector refreshes on exactly the configured steps, unprojected parameters get
exactly AdamW's update, the state is smaller by the computed amount, and a resumed run repeats an
uninterrupted one bit for bit."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from test_train_resume import _assert_same_run
from transferlab.config import ModelConfig
from transferlab.models import build_model
from transferlab.optim import AdamWConfig, GaLoreConfig, optimizer_state_bytes
from transferlab.optim.galore import GaLoreAdamW, top_singular_vectors
from transferlab.train import read_metrics, train


def _grads(shape: tuple[int, ...], steps: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(steps)]


def _galore(param: nn.Parameter, rank: int, gap: int = 1000, **options) -> GaLoreAdamW:
    settings = {"lr": 0.01, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1}
    settings.update(options)
    return GaLoreAdamW([param], rank=rank, update_proj_gap=gap, scale=0.25, **settings)


def _run(param: nn.Parameter, optimizer, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Step through ``grads``; the parameter after each step."""
    after = []
    for grad in grads:
        param.grad = grad.clone()
        optimizer.step()
        after.append(param.detach().clone())
    return after


@pytest.mark.parametrize(("shape", "moments"), [((8, 24), (3, 24)), ((24, 8), (24, 3))])
def test_moments_live_in_the_projected_space(shape, moments):
    param = nn.Parameter(torch.randn(shape))
    optimizer = _galore(param, rank=3)
    _run(param, optimizer, _grads(shape, 1))
    state = optimizer.state[param]
    assert tuple(state["exp_avg"].shape) == tuple(state["exp_avg_sq"].shape) == moments
    assert tuple(state["projector"].shape) == (min(shape), 3)
    assert state["step"].item() == 1


@pytest.mark.parametrize("shape", [(8, 24), (24, 8)])
def test_the_update_is_adam_in_the_projected_coordinates_lifted_back(shape):
    """With P fixed, GaLore on G_t is AdamW on R_t = P^T G_t (or G_t P): the same moments bit
    for bit, and the weight moves by scale * P @ (AdamW's move of R) (or ... @ P^T)."""
    weight = torch.zeros(shape)  # so the weight is its move, without rounding it away
    param = nn.Parameter(weight.clone())
    grads = _grads(shape, 4, seed=1)
    optimizer = _galore(param, rank=3, weight_decay=0.0)
    after = _run(param, optimizer, grads)
    projector = optimizer.state[param]["projector"]
    left = shape[0] <= shape[1]
    reduced = [projector.T @ g if left else g @ projector for g in grads]
    start = torch.zeros_like(reduced[0])
    coordinates = nn.Parameter(start.clone())
    adamw = torch.optim.AdamW(
        [coordinates], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0, foreach=False
    )
    moved = _run(coordinates, adamw, reduced)
    reference = adamw.state[coordinates]
    assert torch.equal(optimizer.state[param]["exp_avg"], reference["exp_avg"])
    assert torch.equal(optimizer.state[param]["exp_avg_sq"], reference["exp_avg_sq"])
    lifted = [0.25 * (projector @ m if left else m @ projector.T) for m in moved]
    for step, (ours, expected) in enumerate(zip(after, lifted, strict=True)):
        torch.testing.assert_close(ours - weight, expected, rtol=1e-5, atol=1e-8, msg=f"{step}")


def test_the_projector_is_refreshed_on_steps_0_t_2t_only():
    shape = (6, 10)
    param = nn.Parameter(torch.randn(shape))
    grads = _grads(shape, 8, seed=2)
    optimizer = _galore(param, rank=2, gap=3)
    projectors = []
    for grad in grads:
        param.grad = grad.clone()
        optimizer.step()
        projectors.append(optimizer.state[param]["projector"].clone())
    refreshed = [s for s in range(1, 8) if not torch.equal(projectors[s], projectors[s - 1])]
    assert refreshed == [3, 6]  # 0-based steps; step 0 made the first one
    for step in (0, 3, 6):
        assert torch.equal(projectors[step], top_singular_vectors(grads[step], 2))


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, vocab_size=40))


def _step_once(model: nn.Module, optimizer) -> None:
    tokens = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(0))
    model(tokens).logsumexp(-1).mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_only_matrices_longer_than_the_rank_on_both_sides_are_projected():
    model = _tiny_model()  # d_model 32: every block matrix has a side of 32
    galore, adamw = GaLoreConfig(rank=8).build(model).parts
    by_id = {id(p): n for n, p in model.named_parameters()}
    assert [by_id[id(p)] for g in galore.param_groups for p in g["params"]] == [
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.out.weight",
        "blocks.0.mlp.gate_up.weight",
        "blocks.0.mlp.down.weight",
    ]
    assert isinstance(adamw, torch.optim.AdamW)
    with pytest.raises(ValueError, match=r"GaLoreAdamW got a parameter of shape \(4, 12\) it "):
        _galore(nn.Parameter(torch.zeros(4, 12)), rank=4)


def test_with_rank_reaching_every_smaller_side_galore_is_adamw_bit_for_bit():
    """No matrix is projected at rank 32 (a full-rank projector would only rotate Adam's
    coordinates, which is not AdamW): every parameter gets the fused AdamW update."""
    ours, theirs = _tiny_model(), _tiny_model()
    galore, adamw = GaLoreConfig(rank=32).build(ours), AdamWConfig().build(theirs)
    assert len(galore.parts) == 1
    for _ in range(3):
        _step_once(ours, galore)
        _step_once(theirs, adamw)
    for (name, x), y in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_state_bytes_adamw_and_galore_exactly():
    """AdamW: two fp32 moments per parameter and a 4-byte step per tensor. GaLore: the same,
    but each projected m x n matrix keeps 2 r max(m, n) + r min(m, n) numbers instead of
    2 m n."""
    rank = 8
    adamw_model, galore_model = _tiny_model(), _tiny_model()
    adamw, galore = AdamWConfig().build(adamw_model), GaLoreConfig(rank=rank).build(galore_model)
    assert optimizer_state_bytes(adamw) == optimizer_state_bytes(galore) == 0  # lazily created
    _step_once(adamw_model, adamw)
    _step_once(galore_model, galore)
    hidden = [p for n, p in galore_model.named_parameters() if n.startswith("blocks.0.attn.")]
    hidden += [p for n, p in galore_model.named_parameters() if n.startswith("blocks.0.mlp.")]
    assert all(p.ndim == 2 and min(p.shape) > rank for p in hidden)
    saved = sum(4 * (2 * p.numel() - 2 * rank * max(p.shape) - rank * min(p.shape)) for p in hidden)
    assert optimizer_state_bytes(galore) == optimizer_state_bytes(adamw) - saved


def test_state_dict_round_trips_exactly():
    model = _tiny_model()
    optimizer = GaLoreConfig(rank=4, update_proj_gap=2).build(model)
    _step_once(model, optimizer)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    copy = _tiny_model()
    copy_optimizer = GaLoreConfig(rank=4, update_proj_gap=2).build(copy)
    copy.load_state_dict(saved["model"])
    copy_optimizer.load_state_dict(saved["optimizer"])
    for _ in range(3):  # across a projector refresh (step 2)
        _step_once(model, optimizer)
        _step_once(copy, copy_optimizer)
    for (name, x), y in zip(model.state_dict().items(), copy.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_galore_trains_the_tiny_run_resumes_bit_for_bit_and_records_its_state(tiny_config):
    settings = (
        "optimizer.name=galore",
        "optimizer.rank=8",
        "optimizer.update_proj_gap=3",
        "optimizer.lr=0.01",
        "trainer.log_interval=2",
    )
    full = train(tiny_config("name=full", *settings))
    losses = [r["train_loss"] for r in read_metrics(full.run_dir / "metrics.jsonl")]
    assert losses[-1] < losses[0] - 0.15  # 6.18 -> 5.89 in 8 steps (adamw: 6.07)
    first = train(tiny_config("name=split", *settings), stop_after=4)  # refreshes at 0, 3, 6
    assert first.interrupted
    resumed = train(tiny_config("name=split", *settings), resume=True)
    _assert_same_run(resumed, full)
    adamw = train(tiny_config("name=adamw"))
    assert 0 < full.optimizer_state_bytes < adamw.optimizer_state_bytes
    assert resumed.optimizer_state_bytes == full.optimizer_state_bytes
