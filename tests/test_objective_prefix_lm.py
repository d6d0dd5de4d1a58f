"""prefix_lm: which split each row draws, which positions carry loss, what the prefix is."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives import IGNORE_INDEX, PrefixLM, PrefixLmConfig
from transferlab.objectives.prefix_lm import split_range

SPECIAL = SpecialTokenIds(pad=0, bos=1, eos=2, mask=3)
VOCAB = 50
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True)


def test_a_fixed_split_puts_the_prefix_first_and_the_loss_after_it():
    window = torch.tensor([[1, 11, 12, 13, 14, 15, 16, 17, 18]])  # C = 9 content tokens
    cfg = PrefixLmConfig(min_prefix=1 / 3, max_prefix=1 / 3)  # s = round(3.0) = 3
    batch = cfg.build(SPECIAL, VOCAB).make_batch(window, torch.Generator().manual_seed(0))
    assert batch["prefix_len"].tolist() == [3]
    assert batch["inputs"].tolist() == [[1, 11, 12, 13, 14, 15, 16, 17]]
    # Positions 0, 1 predict prefix tokens (no loss); position 2 predicts the first after it.
    assert batch["targets"].tolist() == [[-100, -100, 13, 14, 15, 16, 17, 18]]
    assert cfg.build(SPECIAL, VOCAB).n_targets(batch) == 6
    assert cfg.attention == "prefix"


def test_a_lead_token_opens_the_row_inside_the_prefix():
    """UL2's S denoiser: the mode token, then the window's first L tokens."""
    window = torch.tensor([[1, 11, 12, 13, 14, 15, 16, 17, 18]])
    cfg = PrefixLmConfig(min_prefix=0.25, max_prefix=0.25)  # C = 8: s = round(2.0) = 2
    objective = PrefixLM(cfg, SPECIAL, lead=99)
    batch = objective.make_batch(window, torch.Generator().manual_seed(0))
    assert batch["prefix_len"].tolist() == [3]
    assert batch["inputs"].tolist() == [[99, 1, 11, 12, 13, 14, 15, 16]]
    assert batch["targets"].tolist() == [[-100, -100, 12, 13, 14, 15, 16, 17]]


def test_padding_carries_no_loss():
    window = torch.tensor([[1, 11, 12, 13, 2, 0, 0, 0, 0]])
    cfg = PrefixLmConfig(min_prefix=0.25, max_prefix=0.25)  # s = round(2.25) = 2
    batch = cfg.build(SPECIAL, VOCAB).make_batch(window, torch.Generator())
    assert batch["targets"].tolist() == [[-100, 12, 13, 2, -100, -100, -100, -100]]


def test_splits_are_uniform_over_the_configured_range():
    window = torch.randint(4, VOCAB, (4000, 21), generator=torch.Generator().manual_seed(0))
    cfg = PrefixLmConfig(min_prefix=0.2, max_prefix=0.6)  # C = 21: s in [4, 13]
    batch = cfg.build(SPECIAL, VOCAB).make_batch(window, torch.Generator().manual_seed(1))
    counts = torch.bincount(batch["prefix_len"], minlength=22)
    assert counts[:4].sum() == 0 and counts[14:].sum() == 0
    assert counts[4:14].min() > 4000 / 10 * 0.8 and counts[4:14].max() < 4000 / 10 * 1.2


@pytest.mark.parametrize(
    ("content", "low", "high", "expected"),
    [(33, 0.0, 1.0, (1, 32)), (33, 0.5, 0.5, (16, 16)), (4, 0.0, 0.1, (1, 1)), (2, 1, 1, (1, 1))],
)
def test_split_range_keeps_a_token_on_each_side(content, low, high, expected):
    assert split_range(content, low, high) == expected


@PROPERTY
@given(
    rows=st.integers(1, 6),
    length=st.integers(3, 40),
    bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted),
    lead=st.sampled_from([None, 99]),
    seed=st.integers(0, 2**16),
)
def test_loss_is_exactly_on_the_tokens_after_the_prefix(rows, length, bounds, lead, seed):
    gen = torch.Generator().manual_seed(seed)
    window = torch.randint(4, VOCAB, (rows, length), generator=gen)
    cfg = PrefixLmConfig(min_prefix=bounds[0], max_prefix=bounds[1])
    objective = PrefixLM(cfg, SPECIAL, lead=lead)
    batch = objective.make_batch(window, gen)
    n_lead = int(lead is not None)
    row = window if lead is None else torch.cat([torch.full((rows, 1), lead), window], 1)[:, :-1]
    low, high = split_range(length - n_lead, *bounds)
    split = batch["prefix_len"] - n_lead
    assert bool(((split >= low) & (split <= high)).all())
    assert torch.equal(batch["inputs"], row[:, :-1])
    loss_at = torch.arange(length - 1)[None] >= batch["prefix_len"][:, None] - 1
    assert torch.equal(batch["targets"] != IGNORE_INDEX, loss_at)
    assert torch.equal(batch["targets"][loss_at], row[:, 1:][loss_at])
    assert objective.n_targets(batch) == int((length - n_lead - split).sum())


def test_a_reversed_range_is_refused_naming_both_fields():
    with pytest.raises(ConfigError, match="min_prefix=0.8 exceeds max_prefix=0.2"):
        validate(
            RunConfig, {"objective": {"name": "prefix_lm", "min_prefix": 0.8, "max_prefix": 0.2}}
        )
