"""The gelu mlp part: down(gelu(up(x))), 4 d_model wide by default, its counts, its residual
initialization, and an export that refuses it naming the part."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transferlab.config import ModelConfig
from transferlab.models import build_model, count_parameters, flops_per_token
from transferlab.models.hf_export import export_llama

D, LAYERS, VOCAB = 32, 3, 40


def config(**fields) -> ModelConfig:
    base = {"vocab_size": VOCAB, "d_model": D, "n_layers": LAYERS, "n_heads": 4, "mlp": "gelu"}
    return ModelConfig(**{**base, **fields})


def test_forward_is_down_of_gelu_of_up():
    torch.manual_seed(0)
    mlp = build_model(config()).blocks[0].mlp
    assert [type(mlp.up), type(mlp.down)] == [nn.Linear, nn.Linear]
    assert (mlp.up.weight.shape, mlp.down.weight.shape) == ((4 * D, D), (D, 4 * D))
    x = torch.randn(2, 5, D)
    expected = F.gelu(x @ mlp.up.weight.T) @ mlp.down.weight.T
    torch.testing.assert_close(mlp(x, None), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fields", [{}, {"d_ff": 40, "tie_embeddings": False}, {"qk_norm": True}])
def test_counts_match_the_module_and_the_hand_formula(fields):
    cfg = config(**fields)
    torch.manual_seed(0)
    model = build_model(cfg)
    counted = count_parameters(cfg)
    assert counted.total == sum(p.numel() for p in model.parameters())
    assert counted.non_embedding == model.num_parameters()
    ffn = fields.get("d_ff", 4 * D)
    matrices = 4 * D * D + 2 * D * ffn  # q, k, v, out; up, down
    norms = 2 * D + (2 * cfg.head_dim if cfg.qk_norm else 0)
    assert counted.non_embedding == LAYERS * (matrices + norms) + D
    seq_len = 16
    expected_flops = 6 * (LAYERS * matrices + D * VOCAB) + 12 * LAYERS * D * seq_len
    assert flops_per_token(cfg, seq_len) == expected_flops


def test_down_is_a_residual_output_with_the_scaled_std():
    torch.manual_seed(0)
    model = build_model(config(d_model=256, n_layers=8))
    std = model.config.init_std
    assert model.blocks[2].mlp.up.weight.std().item() == pytest.approx(std, rel=0.03)
    residual = model.blocks[2].mlp.down.weight.std().item()
    assert residual == pytest.approx(std / math.sqrt(2 * 8), rel=0.03)


def test_export_refuses_naming_the_part(tmp_path):
    torch.manual_seed(0)
    with pytest.raises(
        ValueError,
        match=r"^model.mlp='gelu' cannot be exported to Hugging Face: Llama's MLP is gated",
    ):
        export_llama(build_model(config()), tmp_path / "tokenizer.json", tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []
