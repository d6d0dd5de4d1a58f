"""The sparse_low_rank linear part (SLTrain): W = (alpha / rank) B A + S with a fixed random
support; its forward and gradients against a dense masked reference, its counts, its seeded
support (fixed in training, kept by checkpoints and resume), its validation and its export."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from transferlab.config import ModelConfig
from transferlab.models import build_model, count_parameters, flops_per_token
from transferlab.models.hf_export import hf_state_dict
from transferlab.models.parts.sparse_low_rank import SparseLowRankLinear, compose_weight
from transferlab.train import load_run, train

D, FFN, LAYERS, RANK, DENSITY, ALPHA, VOCAB = 32, 48, 2, 4, 0.05, 8.0, 40
SPARSE = {"name": "sparse_low_rank", "rank": RANK, "density": DENSITY, "alpha": ALPHA}


def config(**fields) -> ModelConfig:
    base = {"vocab_size": VOCAB, "d_model": D, "d_ff": FFN, "n_layers": LAYERS, "n_heads": 4}
    return ModelConfig(**{**base, "linear": SPARSE, **fields})


def seeded_model(seed: int = 0, **fields) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(config(**fields))


def layers(model: torch.nn.Module) -> dict[str, SparseLowRankLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, SparseLowRankLinear)}


def supports(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: layer.support.clone() for name, layer in layers(model).items()}


def dense_reference(layer: SparseLowRankLinear) -> tuple[torch.Tensor, ...]:
    """Leaf copies (b, a, dense S) of ``layer``: S is a full [out, in] matrix, zero off the
    support, so autograd gives the dense gradient of every entry."""
    b = layer.b.detach().clone().requires_grad_()
    a = layer.a.detach().clone().requires_grad_()
    dense = torch.zeros(layer.out_features * layer.in_features)
    dense[layer.support.long()] = layer.values.detach()
    return b, a, dense.view(layer.out_features, layer.in_features).requires_grad_()


# ----------------------------------------------------------------------------- structure, counts
def test_every_projection_holds_factors_and_exactly_nnz_trainable_values():
    model = seeded_model()
    shapes = {"qkv": (D, 3 * D), "out": (D, D), "gate_up": (D, 2 * FFN), "down": (FFN, D)}
    found = layers(model)
    assert len(found) == 4 * LAYERS
    for name, layer in found.items():
        n_in, n_out = shapes[name.split(".")[-1]]
        nnz = math.floor(DENSITY * n_in * n_out)
        trainable = {n: tuple(p.shape) for n, p in layer.named_parameters() if p.requires_grad}
        assert trainable == {"b": (n_out, RANK), "a": (RANK, n_in), "values": (nnz,)}
        support = layer.support
        assert support.dtype == torch.int32 and not support.requires_grad
        assert "support" in dict(layer.named_buffers())  # persistent: checkpoints hold it
        assert torch.equal(support, support.unique())  # distinct and sorted
        assert support.min() >= 0 and support.max() < n_in * n_out
    assert model.embed.weight.shape == (VOCAB, D)  # embedding and head stay dense


@pytest.mark.parametrize(
    "fields", [{}, {"qk_norm": True, "tie_embeddings": False}, {"mlp": "gelu"}]
)
def test_counts_match_the_module_and_the_hand_formula(fields):
    cfg = config(**fields)
    model = seeded_model(**fields)
    counted = count_parameters(cfg)
    assert counted.total == sum(p.numel() for p in model.parameters())
    assert counted.non_embedding == model.num_parameters()
    mlp_width = 2 * FFN if cfg.mlp.name == "swiglu" else FFN
    shapes = [(D, 3 * D), (D, D), (D, mlp_width), (FFN, D)]
    projections = sum(RANK * (i + o) + math.floor(DENSITY * i * o) for i, o in shapes)
    norms = 2 * D + (2 * cfg.head_dim if cfg.qk_norm else 0)
    assert counted.non_embedding == LAYERS * (projections + norms) + D
    # Each token meets the composed dense matrix: the FLOPs of the dense model.
    seq_len = 16
    dense = 6 * (LAYERS * sum(i * o for i, o in shapes) + D * VOCAB) + 12 * LAYERS * D * seq_len
    assert flops_per_token(cfg, seq_len) == dense


# ----------------------------------------------------------------------------- forward, backward
@pytest.mark.parametrize("projection", ["blocks.0.attn.qkv", "blocks.0.mlp.down"])
def test_forward_and_gradients_equal_a_dense_masked_reference(projection):
    layer = layers(seeded_model())[projection]
    with torch.no_grad():  # B starts at 0; move it so the low-rank path carries gradient
        layer.b.normal_()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, layer.in_features, generator=gen, requires_grad=True)
    grad_out = torch.randn(3, 5, layer.out_features, generator=gen)
    layer(x).backward(grad_out)

    b, a, dense = dense_reference(layer)
    x_ref = x.detach().clone().requires_grad_()
    expected = F.linear(x_ref, ALPHA / RANK * b @ a + dense)
    expected.backward(grad_out)
    close = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(layer(x), expected, **close)
    torch.testing.assert_close(x.grad, x_ref.grad, **close)
    torch.testing.assert_close(layer.b.grad, b.grad, **close)
    torch.testing.assert_close(layer.a.grad, a.grad, **close)
    # The values' gradient is the dense gradient at the support, and nothing else is kept.
    torch.testing.assert_close(layer.values.grad, dense.grad.view(-1)[layer.support.long()])
    assert layer.support.grad is None


def test_hessian_vector_products_equal_the_dense_reference():
    """The backward is made of differentiable ops, so second derivatives (a Hutchinson flatness
    estimate's Hessian-vector products) go through it."""
    layer = layers(seeded_model())["blocks.0.attn.out"]
    with torch.no_grad():
        layer.b.normal_()
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, D, generator=gen)
    params = [layer.b, layer.a, layer.values]
    vectors = [torch.randn(p.shape, generator=gen) for p in params]
    grads = torch.autograd.grad(layer(x).tanh().square().sum(), params, create_graph=True)
    product = sum((g * v).sum() for g, v in zip(grads, vectors, strict=True))
    ours = torch.autograd.grad(product, params)

    def loss(b: torch.Tensor, a: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        dense = torch.zeros(D * D).index_add(0, layer.support, values).view(D, D)
        return F.linear(x, ALPHA / RANK * b @ a + dense).tanh().square().sum()

    inputs = tuple(p.detach() for p in params)
    _, expected = torch.autograd.functional.hvp(loss, inputs, tuple(vectors))
    for got, want in zip(ours, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_backward_keeps_no_dense_matrix_of_the_layer():
    """What the forward saves for backward is the input and the factors, never an [out, in]
    matrix: the memory SLTrain saves (a dense W per layer alive until its backward)."""
    layer = layers(seeded_model())["blocks.0.mlp.gate_up"]
    saved = []
    x = torch.randn(4, 7, D, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.shape) or t, lambda t: t
    ):
        layer(x).sum().backward()
    assert sorted(saved) == sorted(
        [x.shape, layer.b.shape, layer.a.shape, layer.values.shape, layer.support.shape]
    )


def test_under_autocast_it_computes_what_a_dense_layer_would():
    """Token matmuls in bf16 (the input saved in bf16), W and the gradients in fp32: the dense
    reference under the same autocast gets the same output and the same gradient of S."""
    layer = layers(seeded_model())["blocks.1.attn.qkv"]
    with torch.no_grad():
        layer.b.normal_()
    x = torch.randn(2, 6, D, generator=torch.Generator().manual_seed(3))
    b, a, dense = dense_reference(layer)
    with torch.no_grad():  # composed in fp32, as the layer does
        dense_weight = (ALPHA / RANK * b @ a + dense).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
        expected = F.linear(x, dense_weight)
    assert y.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(y, expected)
    y.float().sum().backward()
    expected.float().sum().backward()
    assert {p.grad.dtype for p in layer.parameters()} == {torch.float32}
    torch.testing.assert_close(layer.values.grad, dense_weight.grad.view(-1)[layer.support.long()])
    grad_b = dense_weight.grad @ a.detach().T * (ALPHA / RANK)
    torch.testing.assert_close(layer.b.grad, grad_b)


# ----------------------------------------------------------------------------- init and support
def test_initialization_is_the_papers():
    model = seeded_model()
    for layer in layers(model).values():
        bound = 1 / math.sqrt(layer.in_features)
        assert torch.equal(layer.b, torch.zeros_like(layer.b))
        for tensor in (layer.a, layer.values):
            assert tensor.abs().max() <= bound
            assert tensor.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.2)
        # B = 0, so training starts from W = S: zero off the support.
        with torch.no_grad():
            weight = compose_weight(layer.b, layer.a, layer.values, layer.support, layer.scale)
        assert torch.count_nonzero(weight) == layer.values.numel()
        assert torch.equal(weight.view(-1)[layer.support.long()], layer.values.detach())


def test_the_support_follows_the_seed_and_differs_between_layers():
    first, again, other = (
        supports(seeded_model(0)),
        supports(seeded_model(0)),
        supports(seeded_model(1)),
    )
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not any(torch.equal(first[n], other[n]) for n in first)
    # Two layers of one shape (the attention outputs of blocks 0 and 1) draw their own.
    assert not torch.equal(first["blocks.0.attn.out"], first["blocks.1.attn.out"])


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"density": 0}, r"density=0 leaves no sparse part: that is the low_rank part; use "),
        ({"density": 1.0}, r"density=1.0 is not a fraction in \(0, 1\)"),
        ({"density": -0.1}, r"density=-0.1 is not a fraction in \(0, 1\)"),
        ({"density": 1e-4}, r"density=0.0001 gives the 32 x 32 projection no sparse entry"),
        ({"rank": 32}, r"rank=32 is not below min\(d_model, ffn_dim\)=32"),
        ({"alpha": 0}, r"alpha"),
    ],
)
def test_bad_settings_are_refused_in_one_line(fields, message):
    with pytest.raises(ValueError, match=message):
        config(linear={**SPARSE, **fields})


def test_the_rank_has_no_default_and_the_rest_the_papers():
    with pytest.raises(ValueError, match="rank"):
        ModelConfig(linear="sparse_low_rank")
    part = ModelConfig(linear={"name": "sparse_low_rank", "rank": 8}).linear
    assert (part.density, part.alpha) == (0.03, 32.0)


# ----------------------------------------------------------------------------- export
def test_the_export_is_the_multiplied_out_dense_matrix():
    model = seeded_model()
    with torch.no_grad():
        for layer in layers(model).values():
            layer.b.normal_()
    hf = hf_state_dict(model)
    down = model.blocks[1].mlp.down
    with torch.no_grad():
        expected = compose_weight(down.b, down.a, down.values, down.support, ALPHA / RANK)
    assert torch.equal(hf["model.layers.1.mlp.down_proj.weight"], expected)
    qkv = layers(model)["blocks.0.attn.qkv"]
    with torch.no_grad():
        q, k, v = compose_weight(qkv.b, qkv.a, qkv.values, qkv.support, ALPHA / RANK).chunk(3)
    assert torch.equal(hf["model.layers.0.self_attn.k_proj.weight"], k)
    # The export holds every entry of every projection: the dense model's count.
    dense = count_parameters(config(linear="dense")).total + VOCAB * D  # + the tied head's copy
    assert sum(t.numel() for t in hf.values()) == dense > count_parameters(config()).total


# ----------------------------------------------------------------------------- training, resume
def test_training_moves_values_and_factors_but_never_the_support(tiny_config):
    cfg = tiny_config("model.linear={name: sparse_low_rank, rank: 4, density: 0.05}")
    result = train(cfg)
    torch.manual_seed(12345)  # another global state: the support comes from the checkpoint
    run = load_run(result.run_dir)
    torch.manual_seed(cfg.seed)  # the model the trainer started from
    initial = layers(build_model(run.config.model))
    trained = layers(run.model)
    assert run.step == 8 and trained.keys() == initial.keys()
    for name, layer in trained.items():
        assert torch.equal(layer.support, initial[name].support)
        assert not torch.equal(layer.values, initial[name].values)
        assert layer.b.abs().sum() > 0  # B starts at zero; the low-rank path trains too


def test_a_resumed_run_is_bitwise_identical_to_an_uninterrupted_one(tiny_config):
    linear = "model.linear={name: sparse_low_rank, rank: 4, density: 0.05}"
    full = train(tiny_config("name=full", linear))
    first = train(tiny_config("name=split", linear), stop_after=3)
    assert first.interrupted and first.steps == 3
    resumed = train(tiny_config("name=split", linear), resume=True)
    assert (resumed.steps, resumed.train_loss, resumed.val_loss) == (
        full.steps,
        full.train_loss,
        full.val_loss,
    )
    ours, theirs = load_run(resumed.run_dir).model, load_run(full.run_dir).model
    for (name, x), (_, y) in zip(
        ours.state_dict().items(), theirs.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
