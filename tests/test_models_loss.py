"""Chunked linear cross entropy: the same loss and gradients as logits + F.cross_entropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import transferlab.models.loss as loss_module
from transferlab.config import ModelConfig
from transferlab.models import build_model
from transferlab.models.loss import linear_cross_entropy, linear_cross_entropy_with_z
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


# ----------------------------------------------------------------------------- z-loss
def _reference_with_z(hidden, weight, targets, coefficient, reduction):
    """Plain PyTorch: cross entropy plus ``coefficient`` times log^2 Z of the target rows."""
    logits = hidden @ weight.T
    keep = targets != -100
    log_z_sq = torch.logsumexp(logits[keep], dim=-1).square()
    z = log_z_sq.mean() if reduction == "mean" else log_z_sq.sum()
    return F.cross_entropy(logits, targets, reduction=reduction), coefficient * z


@pytest.mark.parametrize("chunked", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_z_loss_value_and_gradients_match_plain_pytorch(monkeypatch, chunked, reduction):
    if chunked:
        monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", 5 * VOCAB)
    hidden, weight, targets = inputs(seed=4)
    coefficient = 0.37
    want_ce, want_z = _reference_with_z(hidden, weight, targets, coefficient, reduction)
    got_ce, got_log_z_sq = linear_cross_entropy_with_z(hidden, weight, targets, reduction)
    got_z = coefficient * got_log_z_sq
    torch.testing.assert_close(got_ce, want_ce, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_z, want_z, rtol=1e-6, atol=1e-6)
    want_grads = torch.autograd.grad(want_ce + want_z, (hidden, weight))
    got_grads = torch.autograd.grad(got_ce + got_z, (hidden, weight))
    for got, want in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(got_grads[0][[0, 7, 8, 22]], torch.zeros(4, WIDTH))  # ignored rows


def test_z_loss_gradients_are_kept_apart_from_the_cross_entropys(small_chunks):
    """Backward through log^2 Z alone, or a weighting other than 1:1, is still exact."""
    hidden, weight, targets = inputs(seed=5)
    _, want_z = _reference_with_z(hidden, weight, targets, 1.0, "sum")
    _, got_z = linear_cross_entropy_with_z(hidden, weight, targets, "sum")
    for got, want in zip(
        torch.autograd.grad(got_z, (hidden, weight)),
        torch.autograd.grad(want_z, (hidden, weight)),
        strict=True,
    ):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    ce, z = linear_cross_entropy_with_z(hidden, weight, targets, "sum")
    (weighted,) = torch.autograd.grad(-2 * ce + 5 * z, hidden)
    (ce_grad,) = torch.autograd.grad(linear_cross_entropy(hidden, weight, targets, "sum"), hidden)
    (z_grad,) = torch.autograd.grad(
        _reference_with_z(hidden, weight, targets, 1.0, "sum")[1], hidden
    )
    torch.testing.assert_close(weighted, -2 * ce_grad + 5 * z_grad, rtol=1e-5, atol=1e-5)


def test_z_loss_under_autocast_takes_the_plain_path():
    hidden, weight, targets = inputs()
    _, want_z = _reference_with_z(hidden, weight, targets, 1.0, "mean")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, got_z = linear_cross_entropy_with_z(hidden, weight, targets)
    assert got_z.dtype == torch.float32
    torch.testing.assert_close(got_z, want_z, rtol=0.02, atol=0.05)


def _model_and_batch():
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4))
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, 9), generator=gen)
    targets = torch.randint(0, VOCAB, (2, 9), generator=gen)
    targets[0, :3] = -100
    return model, ids, targets


def test_token_prediction_z_loss_is_the_coefficient_times_summed_log_z_squared(small_chunks):
    model, ids, targets = _model_and_batch()
    logits = model(ids).flatten(0, 1)
    keep = targets.flatten() != -100
    expected = 1e-2 * torch.logsumexp(logits[keep], dim=-1).square().sum()
    out = token_prediction_loss(model, ids, targets, "causal", z_loss=1e-2)
    assert set(out.aux) == {"z_loss"} and out.n_targets == 15
    torch.testing.assert_close(out.aux["z_loss"], expected)
    plain = F.cross_entropy(logits, targets.flatten(), reduction="sum")
    torch.testing.assert_close(out.sum, plain)  # the main loss does not include it
    want = torch.autograd.grad(plain + expected, list(model.parameters()))
    got = torch.autograd.grad(out.total, list(model.parameters()))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_zero_z_loss_is_exactly_the_plain_cross_entropy_path(small_chunks):
    model, ids, targets = _model_and_batch()
    out = token_prediction_loss(model, ids, targets, "causal", z_loss=0.0)
    assert out.aux == {}
    features = model(ids, output="features")
    plain = linear_cross_entropy(
        features.hidden.flatten(0, 1), features.head, targets.flatten(), "sum"
    )
    assert torch.equal(out.sum, plain)
    got = torch.autograd.grad(out.total, list(model.parameters()))
    want = torch.autograd.grad(plain, list(model.parameters()))
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
