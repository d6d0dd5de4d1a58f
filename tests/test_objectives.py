"""Objectives: exactly which positions carry loss, and what the model sees."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives import IGNORE_INDEX, ClmConfig, MlmConfig
from transferlab.train import read_metrics, train
from transferlab.train.run_dir import config_key

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


# ----------------------------------------------------------------------------- z-loss
@pytest.mark.parametrize("name", ["clm", "mlm", "answer_lm", "prefix_lm", "span_corruption", "ul2"])
def test_every_token_prediction_objective_takes_a_z_loss(name):
    cfg = validate(RunConfig, {"objective": {"name": name, "z_loss": 1e-4}})
    assert cfg.objective.build(SPECIAL, VOCAB).z_loss == 1e-4
    assert validate(RunConfig, {"objective": name}).objective.build(SPECIAL, VOCAB).z_loss == 0


def test_a_negative_z_loss_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"objective.*z_loss.*greater than or equal to 0"):
        validate(RunConfig, {"objective": {"name": "clm", "z_loss": -1.0}})


def test_run_keys_without_z_loss_are_those_of_before():
    """Cached runs stay valid: these keys were computed before objectives had a z_loss."""
    assert config_key(RunConfig()) == "70326e30c912ec0b"
    assert config_key(validate(RunConfig, {"objective": "mlm"})) != config_key(RunConfig())
    answer = validate(RunConfig, {"objective": {"name": "answer_lm", "z_loss": 0.0}})
    assert config_key(answer) == "64a3e984d20b20cb"
    with_z = validate(RunConfig, {"objective": {"name": "clm", "z_loss": 1e-4}})
    assert config_key(with_z) != config_key(RunConfig())


def test_z_loss_is_logged_and_pulls_log_z_towards_zero(tiny_config):
    """The stability callback's log Z (measured on the step's own batch) ends much nearer 0
    with a strong z-loss than without (about 3.8 against 5.8 here)."""
    measured = ("trainer.callbacks=[{name: stability, every: 1}]", "optimizer.lr=3e-2")
    plain = read_metrics(train(tiny_config(*measured, "name=plain")).run_dir / "metrics.jsonl")
    run = train(tiny_config(*measured, "name=z", "objective.z_loss=1.0"))
    rows = read_metrics(run.run_dir / "metrics.jsonl")
    assert "z_loss" not in plain[-1] and all(r["z_loss"] > 0 for r in rows)
    assert rows[-1]["log_z_mean"] < plain[-1]["log_z_mean"] - 1.0
