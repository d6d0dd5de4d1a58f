"""Composing the model from parts: the default composition is exactly the dense model it was
before parts (state-dict names, initialization draws, forward and gradients bit for bit), part
configs validate and round-trip, and a part can add auxiliary losses."""

from __future__ import annotations

import math
from typing import Literal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transferlab.config import MLPS, ConfigError, ModelConfig, RunConfig, apply_overrides, validate
from transferlab.models import build_model
from transferlab.models.parts.base import init_weights
from transferlab.models.parts.mlp import SwiGLU, SwigluConfig
from transferlab.models.rotary import apply_rotary, rotary_tables

VOCAB = 40
SHAPES = {
    "default": {},
    "qk_norm": {"qk_norm": True},
    "untied": {"tie_embeddings": False, "d_ff": 48, "n_layers": 3},
    "nano": {"preset": "nano", "qk_norm": True},
}


def config(**fields) -> ModelConfig:
    return ModelConfig(
        **{"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, **fields}
    )


def seeded_model(cfg: ModelConfig, seed: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg)


def expected_keys(cfg: ModelConfig) -> list[str]:
    """The state-dict names of the dense model, in order, as old checkpoints hold them."""
    keys = ["embed.weight"]
    for i in range(cfg.n_layers):
        block = f"blocks.{i}."
        keys += [block + "attn_norm.weight", block + "attn.qkv.weight", block + "attn.out.weight"]
        if cfg.qk_norm:
            keys += [block + "attn.q_norm.weight", block + "attn.k_norm.weight"]
        keys += [block + "mlp_norm.weight", block + "mlp.gate_up.weight", block + "mlp.down.weight"]
    keys.append("final_norm.weight")
    return keys if cfg.tie_embeddings else [*keys, "lm_head.weight"]


def expected_shape(cfg: ModelConfig, key: str) -> tuple[int, ...]:
    d, ffn, vocab = cfg.d_model, cfg.ffn_dim, cfg.vocab_size
    module = key.split(".")[-2]
    return {
        "embed": (vocab, d),
        "lm_head": (vocab, d),
        "qkv": (3 * d, d),
        "out": (d, d),
        "gate_up": (2 * ffn, d),
        "down": (d, ffn),
        "q_norm": (cfg.head_dim,),
        "k_norm": (cfg.head_dim,),
    }.get(module, (d,))


def reference_init(cfg: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    """The weights the dense model has always drawn after ``torch.manual_seed(seed)``.

    Construction draws first, module by module (nn.Embedding N(0, 1), nn.Linear kaiming-uniform),
    and is overwritten: every matrix N(0, init_std) in the same order, norm scales 1; then each
    block's residual outputs (attn.out, mlp.down) again with init_std / sqrt(2 n_layers).
    """
    torch.manual_seed(seed)
    keys = expected_keys(cfg)
    for key in keys:
        shape = expected_shape(cfg, key)
        if key == "embed.weight":
            nn.init.normal_(torch.empty(shape))
        elif len(shape) == 2:
            nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5))
    state = {}
    for key in keys:
        shape = expected_shape(cfg, key)
        state[key] = (
            torch.empty(shape).normal_(0, cfg.init_std) if len(shape) == 2 else torch.ones(shape)
        )
    residual_std = cfg.init_std / math.sqrt(2 * cfg.n_layers)
    for i in range(cfg.n_layers):
        for key in (f"blocks.{i}.attn.out.weight", f"blocks.{i}.mlp.down.weight"):
            state[key] = torch.empty(expected_shape(cfg, key)).normal_(0, residual_std)
    return state


def functional_logits(
    cfg: ModelConfig, state: dict[str, torch.Tensor], ids: torch.Tensor, causal: bool
) -> torch.Tensor:
    """The dense model's forward, op for op, from a state dict (no mask: causal or full)."""

    def norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), weight.float(), cfg.norm_eps).to(x.dtype)

    batch, length = ids.shape
    cos, sin = (
        table[:length, None, :]
        for table in rotary_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
    )
    x = F.embedding(ids, state["embed.weight"])
    for i in range(cfg.n_layers):
        w = {key.removeprefix(f"blocks.{i}."): value for key, value in state.items()}
        qkv = F.linear(norm(x, w["attn_norm.weight"]), w["attn.qkv.weight"])
        q, k, v = qkv.view(batch, length, 3, cfg.n_heads, cfg.head_dim).unbind(2)
        if cfg.qk_norm:
            q, k = norm(q, w["attn.q_norm.weight"]), norm(k, w["attn.k_norm.weight"])
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal
        )
        x = x + F.linear(
            y.transpose(1, 2).reshape(batch, length, cfg.d_model), w["attn.out.weight"]
        )
        gate, up = F.linear(norm(x, w["mlp_norm.weight"]), w["mlp.gate_up.weight"]).chunk(2, dim=-1)
        x = x + F.linear(F.silu(gate) * up, w["mlp.down.weight"])
    head = state.get("lm_head.weight", state["embed.weight"])
    return F.linear(norm(x, state["final_norm.weight"]), head)


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(2))


# ----------------------------------------------------------------------------- the default = dense
@pytest.mark.parametrize("fields", SHAPES.values(), ids=SHAPES.keys())
def test_default_parts_keep_every_state_dict_name_and_shape(fields):
    cfg = config(**fields)
    model = seeded_model(cfg)
    state = model.state_dict()
    assert list(state) == expected_keys(cfg)
    assert {key: tuple(value.shape) for key, value in state.items()} == {
        key: expected_shape(cfg, key) for key in state
    }
    assert type(model.blocks[0].attn.qkv) is nn.Linear  # what peft's LoRA wraps
    assert [type(model.blocks[0].mlp.gate_up), type(model.blocks[0].mlp.down)] == [nn.Linear] * 2
    build_model(cfg).load_state_dict(state, strict=True)


@pytest.mark.parametrize("fields", SHAPES.values(), ids=SHAPES.keys())
def test_default_parts_draw_exactly_the_dense_initialization(fields):
    cfg = config(**fields)
    model = seeded_model(cfg, seed=11)
    after_build = torch.get_rng_state()
    expected = reference_init(cfg, seed=11)
    assert torch.equal(torch.get_rng_state(), after_build)  # no extra or missing draws
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize("fields", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_default_forward_and_gradients_are_bit_identical_to_the_dense_model(ids, fields, attention):
    cfg = config(**fields)
    model = seeded_model(cfg)
    with torch.no_grad():  # norm scales away from 1, so a misplaced norm would show
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.3 * torch.randn_like(param))
    leaves = {key: value.clone().requires_grad_() for key, value in model.state_dict().items()}
    causal = attention == "causal"
    expected = functional_logits(cfg, leaves, ids, causal)
    logits = model(ids, attention=attention)
    assert torch.equal(logits, expected)
    targets = ids.roll(-1, dims=1).flatten()
    F.cross_entropy(logits.flatten(0, 1), targets).backward()
    F.cross_entropy(expected.flatten(0, 1), targets).backward()
    for name, param in model.named_parameters():
        assert torch.equal(param.grad, leaves[name].grad), name


# ----------------------------------------------------------------------------- part configs
def test_model_config_names_its_parts_and_round_trips():
    default = config()
    assert {field: part.name for field, part in default.parts.items()} == {
        "attention": "mha",
        "mlp": "swiglu",
        "norm": "rmsnorm",
        "linear": "dense",
    }
    composed = config(qk_norm=True, mlp="gelu", linear={"name": "low_rank", "rank": 8})
    assert composed.to_dict()["linear"] == {"name": "low_rank", "rank": 8}
    assert composed.to_dict()["mlp"] == {"name": "gelu"}
    assert ModelConfig(**composed.to_dict()) == composed
    assert composed.qk_norm and composed.attention.name == "mha"


def test_parts_are_chosen_by_dotted_overrides():
    data = apply_overrides(
        {}, ["model.linear.name=low_rank", "model.linear.rank=4", "model.qk_norm=true"]
    )
    cfg = validate(RunConfig, data).model
    assert (cfg.linear.name, cfg.linear.rank, cfg.qk_norm) == ("low_rank", 4, True)


def test_the_mlp_part_sets_the_default_width():
    assert config(d_model=96).ffn_dim == 256  # swiglu: ~8/3 d_model, a multiple of 16
    assert config(d_model=96, mlp="gelu").ffn_dim == 384  # gelu: 4 d_model
    assert config(d_model=96, mlp="gelu", d_ff=100).ffn_dim == 100


def test_an_unknown_part_fails_in_one_line_naming_the_choices():
    with pytest.raises(
        ConfigError, match=r"model\.mlp: .*unknown mlp 'hyena'; expected one of \["
    ) as info:
        validate(RunConfig, {"model": {"mlp": {"name": "hyena"}}})
    assert "\n" not in str(info.value) and "'swiglu'" in str(info.value)


def test_a_module_with_parameters_but_no_init_rule_is_refused():
    with pytest.raises(TypeError, match="LayerNorm holds parameters but has no init_weights"):
        init_weights(nn.LayerNorm(4), 0.02)


# ----------------------------------------------------------------------------- auxiliary losses
class _SwiGLUReportingL2(SwiGLU):
    """SwiGLU that reports the mean square of its output as an auxiliary loss (test only)."""

    def forward(self, x, ctx):
        y = super().forward(x, ctx)
        self.reported = y.float().pow(2).mean()
        ctx.add_aux_loss("l2", self.reported)
        return y


@MLPS.register("test_swiglu_l2")
class _SwigluL2Config(SwigluConfig):
    name: Literal["test_swiglu_l2"] = "test_swiglu_l2"

    def build(self, model):
        return _SwiGLUReportingL2(model)


def test_part_aux_losses_reach_model_output_averaged_over_layers(ids):
    plain = seeded_model(config(n_layers=3))
    model = seeded_model(config(n_layers=3, mlp="test_swiglu_l2"))
    out = model(ids, output="features")
    assert set(out.aux_losses) == {"l2"} and out.aux_losses["l2"].ndim == 0
    reported = [block.mlp.reported for block in model.blocks]
    assert len(set(r.item() for r in reported)) == 3  # the layers differ, so a mean is visible
    torch.testing.assert_close(out.aux_losses["l2"], sum(reported) / 3, rtol=0, atol=0)
    assert plain(ids, output="features").aux_losses == {}
    assert torch.equal(model(ids), plain(ids))  # the loss is reported, not added to the logits
    out.aux_losses["l2"].backward()
    assert model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.embed.weight.grad.abs().sum() > 0
