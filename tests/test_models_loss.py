"""Chunked linear cross entropy: the same loss and gradients as logits + F.cross_entropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import transferlab.models.loss as loss_module
from transferlab.config import ModelConfig
from transferlab.models import build_model
from transferlab.models.loss import linear_cross_entropy
from transferlab.objectives import token_prediction_loss

VOCAB, WIDTH, ROWS = 50, 16, 23


@pytest.fixture
def small_chunks(monkeypatch):
    """Five rows per chunk, so 23 rows take several chunks and a ragged last one."""
    monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", 5 * VOCAB)


def inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(ROWS, WIDTH, generator=gen, requires_grad=True)
    weight = torch.randn(VOCAB, WIDTH, generator=gen, requires_grad=True)
    targets = torch.randint(0, VOCAB, (ROWS,), generator=gen)
    targets[[0, 7, 8, 22]] = -100
    return hidden, weight, targets


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_logits_cross_entropy_with_gradients(small_chunks, reduction):
    hidden, weight, targets = inputs()
    expected = F.cross_entropy(hidden @ weight.T, targets, reduction=reduction)
    expected_grads = torch.autograd.grad(expected, (hidden, weight))
    got = linear_cross_entropy(hidden, weight, targets, reduction)
    got_grads = torch.autograd.grad(got, (hidden, weight))
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
    assert torch.equal(got_grads[0][[0, 7, 8, 22]], torch.zeros(4, WIDTH))  # ignored rows


def test_gradient_is_scaled_by_the_upstream_gradient(small_chunks):
    hidden, weight, targets = inputs()
    (base,) = torch.autograd.grad(linear_cross_entropy(hidden, weight, targets), hidden)
    (scaled,) = torch.autograd.grad(3 * linear_cross_entropy(hidden, weight, targets), hidden)
    torch.testing.assert_close(scaled, 3 * base)


def test_frozen_weight_and_no_grad(small_chunks):
    hidden, weight, targets = inputs()
    expected = F.cross_entropy(hidden @ weight.T, targets)
    frozen = weight.detach()
    loss = linear_cross_entropy(hidden, frozen, targets)
    loss.backward()
    assert hidden.grad is not None and frozen.grad is None
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(hidden, weight, targets), expected)


def test_no_target_rows_and_bad_reduction():
    hidden, weight, _ = inputs()
    ignored = torch.full((ROWS,), -100)
    assert math.isnan(linear_cross_entropy(hidden, weight, ignored).item())  # as torch's mean
    assert linear_cross_entropy(hidden, weight, ignored, "sum").item() == 0.0
    with pytest.raises(ValueError, match="reduction='none' is unknown"):
        linear_cross_entropy(hidden, weight, ignored, "none")


def test_autocast_takes_the_plain_path():
    hidden, weight, targets = inputs()
    expected = F.cross_entropy(hidden @ weight.T, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = linear_cross_entropy(hidden, weight, targets)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0.02, atol=0.05)


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_token_prediction_loss_equals_the_loss_of_the_model_logits(small_chunks, attention):
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4))
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, 9), generator=gen)
    targets = torch.randint(0, VOCAB, (2, 9), generator=gen)
    targets[0, :3] = -100
    logits = model(ids, attention=attention)
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
    out = token_prediction_loss(model, ids, targets, attention)
    torch.testing.assert_close(out.sum, expected)
    assert out.n_targets == 15 and out.aux == {}
    expected_grads = torch.autograd.grad(expected, list(model.parameters()))
    got_grads = torch.autograd.grad(out.total, list(model.parameters()))
    for got, want in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
