"""The low_rank linear part: weight u @ v, its parameter and FLOP counts, initialization, training
through the engine, and an export that refuses it before writing anything."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.config import ModelConfig
from transferlab.models import build_model, count_parameters, flops_per_token
from transferlab.models.hf_export import export_llama
from transferlab.models.parts.low_rank import LowRankLinear
from transferlab.train import train

D, FFN, LAYERS, RANK, VOCAB = 32, 48, 2, 4, 40


def config(**fields) -> ModelConfig:
    base = {"vocab_size": VOCAB, "d_model": D, "d_ff": FFN, "n_layers": LAYERS, "n_heads": 4}
    return ModelConfig(**{**base, "linear": {"name": "low_rank", "rank": RANK}, **fields})


def test_every_block_projection_is_factorized_and_computes_u_v():
    torch.manual_seed(0)
    model = build_model(config())
    attn, mlp = model.blocks[1].attn, model.blocks[1].mlp
    shapes = {
        name: (m.u.shape, m.v.shape)
        for name, m in [
            ("qkv", attn.qkv),
            ("out", attn.out),
            ("gate_up", mlp.gate_up),
            ("down", mlp.down),
        ]
    }
    assert shapes == {
        "qkv": ((3 * D, RANK), (RANK, D)),
        "out": ((D, RANK), (RANK, D)),
        "gate_up": ((2 * FFN, RANK), (RANK, D)),
        "down": ((D, RANK), (RANK, FFN)),
    }
    x = torch.randn(3, 5, D)
    torch.testing.assert_close(attn.qkv(x), x @ (attn.qkv.u @ attn.qkv.v).T, rtol=1e-5, atol=1e-6)
    assert model.embed.weight.shape == (VOCAB, D)  # the embedding and head stay dense


@pytest.mark.parametrize(
    "fields", [{}, {"qk_norm": True, "tie_embeddings": False}, {"mlp": "gelu"}]
)
def test_counts_match_the_module_and_the_hand_formula(fields):
    cfg = config(**fields)
    torch.manual_seed(0)
    model = build_model(cfg)
    counted = count_parameters(cfg)
    assert counted.total == sum(p.numel() for p in model.parameters())
    assert counted.non_embedding == model.num_parameters()
    # A factorized in x out weight holds rank * (in + out) entries.
    mlp_width = 2 * FFN if cfg.mlp.name == "swiglu" else FFN
    projections = RANK * ((D + 3 * D) + (D + D) + (D + mlp_width) + (FFN + D))
    norms = 2 * D + (2 * cfg.head_dim if cfg.qk_norm else 0)
    assert counted.non_embedding == LAYERS * (projections + norms) + D
    seq_len = 16
    expected_flops = 6 * (LAYERS * projections + D * VOCAB) + 12 * LAYERS * D * seq_len
    assert flops_per_token(cfg, seq_len) == expected_flops


def test_factors_give_the_product_the_dense_std():
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=VOCAB,
        d_model=256,
        n_layers=8,
        n_heads=4,
        linear={"name": "low_rank", "rank": 16},
    )
    model = build_model(cfg)
    qkv, down = model.blocks[0].attn.qkv, model.blocks[0].mlp.down
    assert (qkv.u @ qkv.v).std().item() == pytest.approx(cfg.init_std, rel=0.05)
    assert (down.u @ down.v).std().item() == pytest.approx(
        cfg.init_std / 4, rel=0.05
    )  # 1/sqrt(2*8)
    assert qkv.u.std().item() == pytest.approx(qkv.v.std().item(), rel=0.05)


def test_gradient_reaches_both_factors_of_every_projection():
    torch.manual_seed(0)
    model = build_model(config())
    ids = torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(1))
    F.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    factors = [m for m in model.modules() if isinstance(m, LowRankLinear)]
    assert len(factors) == 4 * LAYERS
    assert all(f.u.grad.abs().sum() > 0 and f.v.grad.abs().sum() > 0 for f in factors)


def test_a_rank_that_is_not_low_is_refused_naming_the_bound():
    with pytest.raises(
        ValueError, match=r"model.linear.rank=32 is not below min\(d_model, ffn_dim\)=32"
    ):
        config(linear={"name": "low_rank", "rank": 32})
    with pytest.raises(ValueError, match="rank"):
        ModelConfig(linear="low_rank")  # the rank has no default


def test_export_refuses_before_reading_or_writing_anything(tmp_path):
    torch.manual_seed(0)
    model = build_model(config())
    with pytest.raises(
        ValueError,
        match=r"^model.linear='low_rank' cannot be exported to Hugging Face: .*factorized",
    ):
        export_llama(model, tmp_path / "no-tokenizer.json", tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []


def test_a_low_rank_run_trains_and_export_hf_fails_in_one_line(tiny_config, tmp_path):
    result = train(tiny_config("model.linear={name: low_rank, rank: 4}", "trainer.max_steps=4"))
    assert result.steps == 4 and math.isfinite(result.train_loss)
    out = tmp_path / "hf"
    exported = CliRunner().invoke(app, ["export-hf", str(result.run_dir), str(out)])
    assert exported.exit_code != 0
    assert "error: model.linear='low_rank' cannot be exported to Hugging Face" in exported.output
    assert not out.exists()
