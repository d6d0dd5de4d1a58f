"""The moe mlp part: dropless top-k routing computes each token's weighted sum of exactly its k
experts, the load-balancing loss and router z-loss have their stated values (and the stated
relation to Hugging Face Mixtral's), counts and FLOPs follow the config, the experts get the
model's linear part and the depth-scaled init, and export and bad configs are refused."""

from __future__ import annotations

import math

import pytest
import torch
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

from transferlab.config import ConfigError, ModelConfig, RunConfig, validate
from transferlab.models import build_model, count_parameters, flops_per_token
from transferlab.models.hf_export import check_exportable
from transferlab.models.parts.base import Context
from transferlab.models.parts.low_rank import LowRankLinear
from transferlab.models.parts.moe import MixtureOfExperts, Routing

D, LAYERS, VOCAB = 32, 2, 40


def config(mlp: dict | None = None, **fields) -> ModelConfig:
    base = {"vocab_size": VOCAB, "d_model": D, "n_layers": LAYERS, "n_heads": 4}
    return ModelConfig(**{**base, "mlp": {"name": "moe", **(mlp or {})}, **fields})


def moe_layer(cfg: ModelConfig, seed: int = 0) -> MixtureOfExperts:
    torch.manual_seed(seed)
    return build_model(cfg).blocks[0].mlp


def context() -> Context:
    return Context(torch.empty(0), torch.empty(0), None, True)


def lbl(layer: MixtureOfExperts, routing: Routing) -> float:
    return float(layer.balance_loss(routing).detach())


def reference_output(layer: MixtureOfExperts, x: torch.Tensor) -> torch.Tensor:
    """Token by token: the chosen experts' outputs weighted by their (renormalized) router
    probabilities, plus the shared expert's."""
    rows = []
    for token in x:
        probs = torch.softmax(layer.router(token), dim=-1)
        weights, chosen = probs.topk(layer.top_k)
        if layer.normalize_top_k:
            weights = weights / weights.sum()
        out = sum(
            w * layer.experts[int(e)](token[None], context())[0]
            for w, e in zip(weights, chosen, strict=True)
        )
        if layer.shared is not None:
            out = out + layer.shared(token[None], context())[0]
        rows.append(out)
    return torch.stack(rows)


@pytest.mark.parametrize(
    "mlp",
    [
        {"n_experts": 4, "top_k": 2},
        {"n_experts": 4, "top_k": 1, "shared_expert": True},
        {"n_experts": 6, "top_k": 3, "normalize_top_k": False},
    ],
)
def test_every_token_gets_the_weighted_sum_of_exactly_its_top_k_experts(mlp):
    layer = moe_layer(config(mlp))
    x = torch.randn(3, 7, D)
    routing = layer.route(x.flatten(0, 1))
    assert int(routing.loads.sum()) == 21 * layer.top_k and bool((routing.loads > 0).all())
    out = layer(x, context())
    expected = reference_output(layer, x.flatten(0, 1)).view_as(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    # The gradients reach the router and every expert as through the per-token sum.
    probe = torch.randn_like(x)
    grads = torch.autograd.grad((out * probe).sum(), list(layer.parameters()))
    ref_grads = torch.autograd.grad((expected * probe).sum(), list(layer.parameters()))
    for grad, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-6)


def hand_made_layer(top_k: int, balance: str = "global") -> tuple[MixtureOfExperts, torch.Tensor]:
    """A 4-expert layer whose router is the identity, and 4 positions whose router
    probabilities are (up to softmax rounding) the dyadic rows below."""
    cfg = ModelConfig(
        vocab_size=VOCAB,
        d_model=4,
        n_layers=1,
        n_heads=2,
        mlp={"name": "moe", "n_experts": 4, "top_k": top_k, "balance": balance},
    )
    layer = moe_layer(cfg)
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(4))
    probs = torch.tensor(
        [
            [0.5, 0.25, 0.125, 0.125],
            [0.5, 0.25, 0.125, 0.125],
            [0.125, 0.5, 0.25, 0.125],
            [0.125, 0.125, 0.25, 0.5],
        ]
    )
    return layer, probs.log()


@pytest.mark.parametrize(
    ("top_k", "loads", "expected"),
    [
        # f = (2, 1, 0, 1) / 4, p = (1.25, 1.125, 0.75, 0.875) / 4:
        # 4 * (0.5 * 0.3125 + 0.25 * 0.28125 + 0.25 * 0.21875) = 1.125
        (1, [2, 1, 0, 1], 1.125),
        # f = (2, 3, 2, 1) / 8: 4 * (0.25 * 0.3125 + 0.375 * 0.28125 + 0.25 * 0.1875
        # + 0.125 * 0.21875) = 1.03125
        (2, [2, 3, 2, 1], 1.03125),
    ],
)
def test_balance_loss_is_n_experts_sum_of_slot_fraction_times_mean_probability(
    top_k, loads, expected
):
    layer, x = hand_made_layer(top_k)
    routing = layer.route(x)
    assert routing.loads.tolist() == loads
    assert lbl(layer, routing) == pytest.approx(expected, rel=1e-6)
    # Hugging Face Mixtral counts each of the k choices as a whole token: k times ours.
    theirs = load_balancing_loss_func((routing.logits,), num_experts=4, top_k=top_k)
    assert float(theirs.detach()) == pytest.approx(top_k * expected, rel=1e-6)


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_uniform_routing_gives_a_balance_loss_of_one_whatever_top_k(top_k):
    """Positions whose probabilities are the cyclic shifts of one decreasing row: each expert
    is chosen equally often and the mean probability is uniform."""
    row = torch.tensor([0.4, 0.3, 0.2, 0.1])
    probs = torch.stack([row.roll(shift) for shift in range(4)])
    experts = probs.topk(top_k).indices
    loads = torch.bincount(experts.flatten(), minlength=4)
    routing = Routing(probs.log(), probs, experts, probs.topk(top_k).values, loads)
    layer = moe_layer(config({"n_experts": 4, "top_k": top_k}))
    assert loads.tolist() == [top_k] * 4
    assert lbl(layer, routing) == pytest.approx(1.0, rel=1e-6)


def test_global_balance_takes_the_step_loads_and_micro_its_own():
    step_loads = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64)  # a balanced step
    layer, x = hand_made_layer(1)
    routing = layer.route(x)
    layer.set_step_statistics(step_loads)
    # f uniform: the loss is n_experts * sum_i p_i / 4 = 1.
    assert lbl(layer, routing) == pytest.approx(1.0, rel=1e-6)
    layer.set_step_statistics(None)  # outside a step: its own f, as the hand-made case
    assert lbl(layer, routing) == pytest.approx(1.125, rel=1e-6)
    micro, x = hand_made_layer(1, balance="micro")
    micro.set_step_statistics(step_loads)
    assert lbl(micro, micro.route(x)) == pytest.approx(1.125, rel=1e-6)


def test_aux_losses_are_the_coefficients_times_lbl_and_router_z_averaged_over_layers():
    cfg = config({"n_experts": 4, "top_k": 2, "balance_coef": 0.5, "router_z_coef": 0.25})
    torch.manual_seed(0)
    model = build_model(cfg)
    ids = torch.randint(0, VOCAB, (2, 9))
    inputs: list[torch.Tensor] = []
    hooks = [b.mlp.register_forward_hook(lambda m, a, o: inputs.append(a[0])) for b in model.blocks]
    out = model(ids, output="features")
    for hook in hooks:
        hook.remove()
    lbl, z = [], []
    for block, x in zip(model.blocks, inputs, strict=True):
        routing = block.mlp.route(x.flatten(0, 1))
        lbl.append(block.mlp.balance_loss(routing))
        z.append(torch.logsumexp(routing.logits, dim=-1).square().mean())
    torch.testing.assert_close(out.aux_losses["lbl"], 0.5 * sum(lbl) / LAYERS)
    torch.testing.assert_close(out.aux_losses["router_z"], 0.25 * sum(z) / LAYERS)
    off = config({"balance_coef": 0, "router_z_coef": 0})
    assert build_model(off)(ids, output="features").aux_losses == {}


def test_the_router_runs_in_fp32_under_bf16_autocast():
    layer = moe_layer(config({"n_experts": 4}))
    x = torch.randn(2, 5, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        routing = layer.route(x.flatten(0, 1))
        out = layer(x, context())
    assert routing.logits.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(routing.logits, layer.router(x.flatten(0, 1)))


@pytest.mark.parametrize(
    ("mlp", "width"),
    [({"top_k": 2}, 48), ({"top_k": 2, "shared_expert": True}, 32), ({"top_k": 1}, 96)],
)
def test_default_expert_width_matches_the_dense_swiglu_active_parameters(mlp, width):
    cfg = config(mlp)
    dense = ModelConfig(vocab_size=VOCAB, d_model=D, n_layers=LAYERS, n_heads=4)
    assert dense.ffn_dim == 96 and cfg.ffn_dim == width
    assert cfg.mlp.active_experts * width == dense.ffn_dim  # 96 divides evenly here
    assert config(mlp, d_ff=20).ffn_dim == 20  # d_ff sets the expert width
    assert config({"top_k": 2, "shared_expert": True}, d_model=64).ffn_dim == round(176 / 3)


@pytest.mark.parametrize(
    "fields",
    [
        {"mlp": {"n_experts": 4, "top_k": 2}},
        {"mlp": {"n_experts": 3, "top_k": 1, "shared_expert": True}, "tie_embeddings": False},
        {"mlp": {"n_experts": 4, "top_k": 2}, "linear": {"name": "low_rank", "rank": 4}},
    ],
)
def test_counts_match_the_module_and_the_hand_formula(fields):
    cfg = config(**fields)
    torch.manual_seed(0)
    model = build_model(cfg)
    counted = count_parameters(cfg)
    assert counted.total == sum(p.numel() for p in model.parameters())
    assert counted.non_embedding == model.num_parameters()
    e, k, w = cfg.mlp.n_experts, cfg.mlp.active_experts, cfg.ffn_dim
    rank = getattr(cfg.linear, "rank", None)

    def weights(n_in: int, n_out: int) -> int:
        return rank * (n_in + n_out) if rank else n_in * n_out

    expert = weights(D, 2 * w) + weights(w, D)
    attention = weights(D, 3 * D) + weights(D, D)
    experts_built = e + int(cfg.mlp.shared_expert)
    assert (
        counted.non_embedding == LAYERS * (attention + experts_built * expert + D * e + 2 * D) + D
    )
    seq_len = 16
    active = attention + k * expert + D * e  # per token: k experts (with the shared) + router
    assert (
        flops_per_token(cfg, seq_len)
        == 6 * (LAYERS * active + D * VOCAB) + 12 * LAYERS * D * seq_len
    )


def test_experts_use_the_linear_part_and_get_the_depth_scaled_init():
    cfg = config({"n_experts": 4, "shared_expert": True}, d_model=64, n_layers=4, d_ff=64)
    layer = moe_layer(cfg)
    downs = torch.cat([e.down.weight.detach().flatten() for e in [*layer.experts, layer.shared]])
    gate_ups = torch.cat([e.gate_up.weight.detach().flatten() for e in layer.experts])
    assert float(downs.std()) == pytest.approx(0.02 / math.sqrt(2 * 4), rel=0.05)
    assert float(gate_ups.std()) == pytest.approx(0.02, rel=0.05)
    assert float(layer.router.weight.detach().std()) == pytest.approx(0.02, rel=0.1)
    low_rank = moe_layer(config({"n_experts": 4}, linear={"name": "low_rank", "rank": 4}))
    assert all(isinstance(e.gate_up, LowRankLinear) for e in low_rank.experts)
    assert isinstance(low_rank.router, torch.nn.Linear)  # the router stays dense


def test_export_and_bad_configs_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"model\.mlp='moe' cannot be exported to Hugging Face: "):
        check_exportable(config())
    with pytest.raises(ConfigError, match=r"top_k=9 exceeds n_experts=8") as info:
        validate(RunConfig, {"model": {"mlp": {"name": "moe", "top_k": 9}}})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"balance"):
        validate(RunConfig, {"model": {"mlp": {"name": "moe", "balance": "sequence"}}})
