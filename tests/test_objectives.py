"""Objectives: exactly which positions carry loss, and what the model sees."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives import IGNORE_INDEX, ClmConfig, MlmConfig

SPECIAL = SpecialTokenIds(pad=0, bos=1, eos=2, mask=3)
VOCAB = 50


def _window(batch: int = 4, length: int = 33, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    window = torch.randint(4, VOCAB, (batch, length), generator=gen)
    window[:, 0] = SPECIAL.bos
    window[:, 10] = SPECIAL.eos
    window[:, 11] = SPECIAL.bos
    return window


def _batch(objective, window: torch.Tensor, generator: torch.Generator) -> SimpleNamespace:
    """The objective's Batch as attributes, with its target count."""
    batch = objective.make_batch(window, generator)
    return SimpleNamespace(
        **batch, n_targets=objective.n_targets(batch), attention=objective.attention
    )


def test_clm_shifts_targets_by_one_and_masks_nothing_but_pad():
    window = _window()
    window[0, -3:] = SPECIAL.pad
    out = _batch(ClmConfig().build(SPECIAL, VOCAB), window, torch.Generator())
    assert out.attention == "causal"
    assert torch.equal(out.inputs, window[:, :-1])
    expected = window[:, 1:].clone()
    expected[0, -3:] = IGNORE_INDEX
    assert torch.equal(out.targets, expected)
    assert out.n_targets == window.shape[0] * (window.shape[1] - 1) - 3


def test_mlm_loss_positions_are_exactly_the_selected_non_special_positions():
    window = _window(batch=64, length=129)
    out = _batch(MlmConfig().build(SPECIAL, VOCAB), window, torch.Generator().manual_seed(7))
    tokens = window[:, :-1]
    selected = out.targets != IGNORE_INDEX
    assert out.attention == "bidirectional"
    # Loss targets are the original tokens at selected positions.
    assert torch.equal(out.targets[selected], tokens[selected])
    # Specials never carry loss and are never corrupted.
    special = torch.isin(tokens, torch.tensor(sorted(SPECIAL.all)))
    assert not (selected & special).any()
    assert torch.equal(out.inputs[special], tokens[special])
    # Unselected positions are untouched; every changed position is selected.
    assert torch.equal(out.inputs[~selected], tokens[~selected])
    assert not ((out.inputs != tokens) & ~selected).any()
    # About 15% of maskable positions are selected (n = 64 * 128 - specials).
    rate = selected.sum() / (~special).sum()
    assert 0.13 < float(rate) < 0.17


def test_mlm_80_10_10_split_of_selected_positions():
    window = _window(batch=256, length=129, seed=1)
    out = _batch(MlmConfig().build(SPECIAL, VOCAB), window, torch.Generator().manual_seed(3))
    tokens = window[:, :-1]
    selected = out.targets != IGNORE_INDEX
    n = int(selected.sum())
    masked = int((out.inputs[selected] == SPECIAL.mask).sum()) / n
    kept = int((out.inputs[selected] == tokens[selected]).sum()) / n
    assert 0.77 < masked < 0.83
    # "kept" includes random draws that happen to equal the original (1/46 of the 10%).
    assert 0.08 < kept < 0.13
    replaced = out.inputs[selected & (out.inputs != SPECIAL.mask)]
    assert int(replaced.min()) >= 4  # random replacements are regular tokens only


def test_mlm_is_a_pure_function_of_the_generator_seed():
    window = _window()
    objective = MlmConfig().build(SPECIAL, VOCAB)
    a = _batch(objective, window, torch.Generator().manual_seed(5))
    b = _batch(objective, window, torch.Generator().manual_seed(5))
    c = _batch(objective, window, torch.Generator().manual_seed(6))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.targets, c.targets)


def test_mlm_with_mask_prob_one_and_all_mask_selects_every_regular_token():
    window = _window()
    cfg = MlmConfig(mask_prob=1.0, mask_token_frac=1.0, random_token_frac=0.0)
    out = _batch(cfg.build(SPECIAL, VOCAB), window, torch.Generator().manual_seed(0))
    tokens = window[:, :-1]
    regular = ~torch.isin(tokens, torch.tensor(sorted(SPECIAL.all)))
    assert torch.equal(out.targets != IGNORE_INDEX, regular)
    assert bool((out.inputs[regular] == SPECIAL.mask).all())


def test_mlm_rejects_fractions_over_one():
    with pytest.raises(ValueError, match="at most 1"):
        MlmConfig(mask_token_frac=0.95, random_token_frac=0.1)
