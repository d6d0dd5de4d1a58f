"""The decoder transformer: attention masks, RoPE, parameter counts, presets, init, gradients."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from transferlab.config import ModelConfig
from transferlab.models import build_model, count_parameters, flops_per_token
from transferlab.models.parts.base import Context
from transferlab.models.presets import PRESETS
from transferlab.models.rotary import apply_rotary, rotary_tables

VOCAB = 32
NOMINAL_SIZES = {
    "nano": 0.1e6,
    "micro": 0.5e6,
    "tiny": 1e6,
    "small": 3e6,
    "medium": 7e6,
    "base": 20e6,
    "base125m": 85e6,
}


def small_model(seed: int = 0, **fields) -> torch.nn.Module:
    cfg = {"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, **fields}
    torch.manual_seed(seed)
    return build_model(ModelConfig(**cfg))


def perturb_norms(model: torch.nn.Module) -> None:
    """Move every norm scale away from 1 so tests see whether it is applied."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.3 * torch.randn_like(param))


def logits_after_change(model, ids, position, **kwargs):
    changed = ids.clone()
    changed[:, position] = (changed[:, position] + 1) % VOCAB
    return model(ids, **kwargs), model(changed, **kwargs)


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- attention masks
@torch.no_grad()
def test_causal_positions_before_a_change_are_unaffected(ids):
    model = small_model()
    before, after = logits_after_change(model, ids, 5)
    assert torch.equal(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


@torch.no_grad()
def test_bidirectional_earlier_positions_see_later_tokens(ids):
    model = small_model()
    before, after = logits_after_change(model, ids, 5, attention="bidirectional")
    for pos in range(ids.shape[1]):
        assert not torch.allclose(before[:, pos], after[:, pos]), pos


@torch.no_grad()
def test_prefix_is_bidirectional_inside_and_causal_after(ids):
    model = small_model()
    prefix_len = torch.tensor([4, 7])
    # A change at 5 lies beyond row 0's prefix but inside row 1's.
    before, after = logits_after_change(model, ids, 5, attention="prefix", prefix_len=prefix_len)
    assert torch.equal(before[0, :5], after[0, :5])
    for pos in range(7):
        assert not torch.allclose(before[1, pos], after[1, pos]), pos
    # A change beyond both prefixes reaches no earlier position.
    before, after = logits_after_change(model, ids, 8, attention="prefix", prefix_len=prefix_len)
    assert torch.equal(before[:, :8], after[:, :8])
    assert not torch.allclose(before[:, 8:], after[:, 8:])


@torch.no_grad()
def test_prefix_extremes_equal_causal_and_bidirectional(ids):
    model = small_model()
    batch, length = ids.shape
    empty = model(ids, attention="prefix", prefix_len=torch.zeros(batch, dtype=torch.long))
    full = model(ids, attention="prefix", prefix_len=torch.full((batch,), length))
    torch.testing.assert_close(empty, model(ids), rtol=0, atol=1e-5)
    torch.testing.assert_close(full, model(ids, attention="bidirectional"), rtol=0, atol=1e-5)


def test_bad_attention_arguments_fail_clearly(ids):
    model = small_model()
    with pytest.raises(ValueError, match="attention='sliding' is unknown"):
        model(ids, attention="sliding")
    with pytest.raises(ValueError, match="prefix_len is required"):
        model(ids, attention="prefix")
    with pytest.raises(ValueError, match="prefix_len is required"):
        model(ids, prefix_len=torch.tensor([1, 2]))
    short = small_model(max_seq_len=8)
    with pytest.raises(ValueError, match="input length 12 exceeds model.max_seq_len=8"):
        short(ids)


def test_missing_vocab_size_names_the_fix():
    with pytest.raises(ValueError, match="model.vocab_size is not set; it is taken from the tok"):
        build_model(ModelConfig())


# ----------------------------------------------------------------------------- RoPE and reference
def test_rotary_scores_depend_only_on_relative_offset():
    head_dim = 16
    cos, sin = rotary_tables(head_dim, 64, theta=100.0)
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(head_dim, generator=gen), torch.randn(head_dim, generator=gen)

    def score(q_pos: int, k_pos: int) -> torch.Tensor:
        rq = apply_rotary(q[None, None], cos[q_pos, None], sin[q_pos, None])
        rk = apply_rotary(k[None, None], cos[k_pos, None], sin[k_pos, None])
        return (rq * rk).sum()

    for shift in (1, 7, 30):
        torch.testing.assert_close(score(5 + shift, 2 + shift), score(5, 2), atol=1e-5, rtol=0)
    assert not torch.allclose(score(5, 2), score(5, 3))


def naive_rotate(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate [L, H, D] as complex numbers ``x_i + j x_{i+D/2}`` by ``pos * theta^(-2i/D)``."""
    length, _, dim = x.shape
    half = dim // 2
    freq = theta ** (-torch.arange(half, dtype=torch.float64) * 2 / dim)
    angle = torch.arange(length, dtype=torch.float64)[:, None, None] * freq
    z = torch.complex(x[..., :half].double(), x[..., half:].double()) * torch.polar(
        torch.ones_like(angle), angle
    )
    return torch.cat((z.real, z.imag), dim=-1).float()


def naive_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """Causal forward pass written out step by step for one sequence."""
    cfg = model.config
    heads, dim = cfg.n_heads, cfg.head_dim

    def rms(x, weight):
        return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + cfg.norm_eps)

    length = ids.shape[0]
    x = model.embed.weight[ids]
    future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    for block in model.blocks:
        h = rms(x, block.attn_norm.weight)
        wq, wk, wv = block.attn.qkv.weight.chunk(3)
        q, k, v = ((h @ w.T).view(length, heads, dim) for w in (wq, wk, wv))
        if cfg.qk_norm:
            q, k = rms(q, block.attn.q_norm.weight), rms(k, block.attn.k_norm.weight)
        q, k = naive_rotate(q, cfg.rope_theta), naive_rotate(k, cfg.rope_theta)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(dim)
        weights = scores.masked_fill(future, float("-inf")).softmax(-1)
        attended = torch.einsum("hqk,khd->qhd", weights, v).reshape(length, -1)
        x = x + attended @ block.attn.out.weight.T
        h = rms(x, block.mlp_norm.weight)
        gate, up = (h @ block.mlp.gate_up.weight.T).chunk(2, dim=-1)
        x = x + (F.silu(gate) * up) @ block.mlp.down.weight.T
    return rms(x, model.final_norm.weight) @ model.output_weight.T


@pytest.mark.parametrize("qk_norm", [False, True])
@torch.no_grad()
def test_forward_matches_a_naive_implementation(ids, qk_norm):
    model = small_model(qk_norm=qk_norm, rope_theta=50.0)
    perturb_norms(model)
    logits = model(ids)
    for row in range(ids.shape[0]):
        torch.testing.assert_close(logits[row], naive_logits(model, ids[row]), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- weights and counts
@torch.no_grad()
def test_tied_head_is_the_embedding_matrix(ids):
    tied = small_model()
    assert tied.output_weight is tied.embed.weight
    assert tied.lm_head is None
    logits, hidden = tied(ids, return_hidden=True)
    torch.testing.assert_close(logits, tied.final_norm(hidden[-1]) @ tied.embed.weight.T)
    untied = small_model(tie_embeddings=False)
    assert untied.output_weight is not untied.embed.weight
    assert not torch.equal(untied.output_weight, untied.embed.weight)
    extra = untied.num_parameters(False) - tied.num_parameters(False)
    assert extra == VOCAB * 32
    assert untied.num_parameters() == tied.num_parameters()


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"qk_norm": True},
        {"tie_embeddings": False},
        {"d_ff": 48, "n_layers": 3},
        {"preset": "nano"},
        {"preset": "small", "qk_norm": True, "tie_embeddings": False},
    ],
)
def test_count_parameters_matches_the_module(fields):
    model = small_model(**fields)
    counted = count_parameters(model.config)
    assert counted.total == sum(p.numel() for p in model.parameters())
    assert counted.total == model.num_parameters(non_embedding=False)
    assert counted.non_embedding == model.num_parameters()
    assert counted.embedding == counted.total - counted.non_embedding


def test_presets_span_the_documented_sizes():
    assert set(PRESETS) == set(NOMINAL_SIZES)
    sizes = {}
    for name, nominal in NOMINAL_SIZES.items():
        cfg = ModelConfig(preset=name, vocab_size=1000)
        sizes[name] = count_parameters(cfg).non_embedding
        assert 0.75 * nominal <= sizes[name] <= 1.25 * nominal, (name, sizes[name])
    assert sizes["nano"] == 100_672 and sizes["base"] == 18_979_328  # the docstring table
    assert sizes["base125m"] == 84_953_856
    gpt2_vocab = ModelConfig(preset="base125m", vocab_size=50_304)
    assert count_parameters(gpt2_vocab).total == 123_587_328  # the ~125M of its name
    assert list(sizes.values()) == sorted(sizes.values())
    assert ModelConfig(preset="tiny", n_layers=2).n_layers == 2  # explicit fields win


def test_config_and_presets_load_without_torch():
    # The parts (torch modules) are imported when a ModelConfig first resolves them, not before.
    code = (
        "import sys; from transferlab.config import MODEL_PRESETS;"
        "assert MODEL_PRESETS.get('medium')['d_model'] == 320;"
        "assert 'torch' not in sys.modules, 'config or presets imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_flops_per_token_formula():
    cfg = ModelConfig(vocab_size=100, d_model=32, n_layers=2, n_heads=4, d_ff=64)
    block = 4 * 32 * 32 + 3 * 32 * 64
    expected = 6 * (2 * block + 32 * 100) + 12 * 2 * 32 * 16
    assert flops_per_token(cfg, seq_len=16) == expected == 154_368
    with pytest.raises(ValueError, match="model.vocab_size is not set"):
        flops_per_token(ModelConfig(), seq_len=16)


# ----------------------------------------------------------------------------- behaviour
@torch.no_grad()
def test_return_hidden_gives_the_residual_stream(ids):
    model = small_model(n_layers=3)
    logits, hidden = model(ids, return_hidden=True)
    assert logits.shape == (2, 12, VOCAB)
    assert len(hidden) == 4
    assert all(h.shape == (2, 12, 32) for h in hidden)
    torch.testing.assert_close(hidden[0], model.embed(ids))
    ctx = Context(model.rope_cos[:12, None], model.rope_sin[:12, None], None, True)
    torch.testing.assert_close(hidden[1], model.blocks[0](hidden[0], ctx))
    assert torch.equal(logits, model(ids))


@pytest.mark.parametrize("qk_norm", [False, True])
@torch.no_grad()
def test_runs_under_bf16_autocast(ids, qk_norm):
    model = small_model(qk_norm=qk_norm)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids, attention="prefix", prefix_len=torch.tensor([2, 5]))
    expected = model(ids, attention="prefix", prefix_len=torch.tensor([2, 5]))
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), expected, atol=0.05, rtol=0.05)


def test_same_seed_same_model_and_other_seed_differs(ids):
    first, second, other = small_model(seed=3), small_model(seed=3), small_model(seed=4)
    second_state, other_state = second.state_dict(), other.state_dict()
    for name, a in first.state_dict().items():
        assert torch.equal(a, second_state[name]), name
        if "norm" not in name:
            assert not torch.equal(a, other_state[name]), name
    assert torch.equal(first(ids), second(ids))


def test_init_scales():
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=512, d_model=128, n_layers=8, n_heads=4))
    std = model.config.init_std
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(std, rel=0.02)
    assert model.embed.weight.std().item() == pytest.approx(std, rel=0.02)
    residual = model.blocks[0].mlp.down.weight.std().item()
    assert residual == pytest.approx(std / 4, rel=0.03)  # 1 / sqrt(2 * 8)
    assert all(torch.equal(b.attn_norm.weight, torch.ones(128)) for b in model.blocks)
    assert not any(".bias" in name for name, _ in model.named_parameters())
    assert "rope_cos" not in model.state_dict()


@pytest.mark.parametrize("attention", ["causal", "bidirectional", "prefix"])
def test_gradient_reaches_every_parameter(ids, attention):
    model = small_model(qk_norm=True, tie_embeddings=False)
    prefix_len = torch.tensor([3, 6]) if attention == "prefix" else None
    logits = model(ids, attention=attention, prefix_len=prefix_len)
    F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name
        assert torch.isfinite(param.grad).all(), name
