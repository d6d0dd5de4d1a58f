"""ul2: which denoiser each row draws, the mode token that opens it, and that each row is
exactly the row of span_corruption or prefix_lm it stands for."""

from __future__ import annotations

import pytest
import torch

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives import (
    IGNORE_INDEX,
    PrefixLM,
    PrefixLmConfig,
    SpanCorruption,
    Ul2Config,
)
from transferlab.objectives.spans import SpanNoise
from transferlab.objectives.ul2 import MODE_TOKENS

SPECIAL = SpecialTokenIds(pad=0, bos=1, eos=2, mask=3)
VOCAB = 50
NLU, S2S, NLG = 150, 151, 152  # after the 100 sentinels 50..149


def _window(rows: int, length: int = 33, seed: int = 0) -> torch.Tensor:
    window = torch.randint(4, VOCAB, (rows, length), generator=torch.Generator().manual_seed(seed))
    window[:, 0], window[:, 12], window[:, 13] = SPECIAL.bos, SPECIAL.eos, SPECIAL.bos
    return window


def test_added_tokens_are_the_sentinels_then_the_three_mode_tokens():
    tokens = Ul2Config().added_tokens()
    assert tokens[:2] == ("<extra_id_0>", "<extra_id_1>") and len(tokens) == 103
    assert tokens[100:] == ("[NLU]", "[S2S]", "[NLG]")
    assert list(MODE_TOKENS) == ["R", "S", "X"]
    assert Ul2Config.attention == "prefix"


def test_the_default_mixture_is_the_papers_seven_denoisers():
    mixture = [(d.kind, d.mean_span_length, d.noise_density) for d in Ul2Config().denoisers]
    assert mixture == [
        ("R", 3, 0.15),
        ("R", 8, 0.15),
        ("S", None, None),
        ("X", 3, 0.5),
        ("X", 8, 0.5),
        ("X", 64, 0.15),
        ("X", 64, 0.5),
    ]
    assert {d.weight for d in Ul2Config().denoisers} == {1.0}


def test_every_row_is_its_denoisers_row_with_the_mode_token_first():
    """Rebuild the batch by hand: the same generator draws the denoiser of each row, then
    each denoiser's rows in the mixture's order."""
    cfg = Ul2Config()
    window = _window(64)
    batch = cfg.build(SPECIAL, VOCAB).make_batch(window, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    weights = torch.ones(7, dtype=torch.double)
    choice = torch.multinomial(weights, 64, replacement=True, generator=gen)
    sentinels = torch.arange(50, 150)
    assert set(choice.tolist()) == set(range(7))  # every denoiser is exercised
    for i, d in enumerate(cfg.denoisers):
        rows = (choice == i).nonzero().flatten()
        mode = {"R": NLU, "S": S2S, "X": NLG}[d.kind]
        if d.kind == "S":
            alone = PrefixLM(PrefixLmConfig(), SPECIAL, lead=mode)
        else:
            noise = SpanNoise(d.noise_density, d.mean_span_length)
            alone = SpanCorruption(noise, SPECIAL, sentinels, lead=mode)
        expected = alone.make_batch(window[rows], gen)
        for name in ("inputs", "targets", "prefix_len"):
            assert torch.equal(batch[name][rows], expected[name]), (i, name)
        assert bool((batch["inputs"][rows, 0] == mode).all())
        assert bool((batch["prefix_len"][rows] >= 2).all())  # the mode token and a content token


def test_rows_draw_denoisers_in_proportion_to_their_weights():
    cfg = Ul2Config(
        denoisers=[
            {"kind": "R", "mean_span_length": 3, "noise_density": 0.15, "weight": 3},
            {"kind": "S", "weight": 1},
        ]
    )
    batch = cfg.build(SPECIAL, VOCAB).make_batch(_window(2000), torch.Generator().manual_seed(0))
    share_r = float((batch["inputs"][:, 0] == NLU).double().mean())
    assert share_r == pytest.approx(0.75, abs=0.03)
    assert int(((batch["inputs"][:, 0] == NLU) | (batch["inputs"][:, 0] == S2S)).sum()) == 2000


def test_the_target_count_is_the_sum_of_the_rows_loss_positions():
    objective = Ul2Config().build(SPECIAL, VOCAB)
    batch = objective.make_batch(_window(16), torch.Generator().manual_seed(1))
    assert objective.n_targets(batch) == int((batch["targets"] != IGNORE_INDEX).sum())
    # No row has a loss inside its prefix (its last prefix position predicts the first target).
    positions = torch.arange(batch["targets"].shape[1])[None]
    assert not bool(
        ((batch["targets"] != IGNORE_INDEX) & (positions < batch["prefix_len"][:, None] - 1)).any()
    )


@pytest.mark.parametrize(
    ("denoiser", "message"),
    [
        ({"kind": "S", "noise_density": 0.5}, "the S denoiser is prefix LM; remove its"),
        ({"kind": "R", "noise_density": 0.5}, "the R denoiser corrupts spans; give it both"),
        ({"kind": "X", "mean_span_length": 3}, "the X denoiser corrupts spans; give it both"),
        ({"kind": "S", "weight": 0}, "weight.*greater than 0"),
        (
            {"kind": "R", "mean_span_length": 0.5, "noise_density": 0.5},
            "greater than or equal to 1",
        ),
        ({"kind": "R", "mean_span_length": 3, "noise_density": 1.0}, "less than 1"),
        ({"kind": "Q"}, "kind.*'R', 'S' or 'X'"),
    ],
)
def test_a_bad_denoiser_is_refused_at_validation(denoiser, message):
    with pytest.raises(ConfigError, match=message):
        validate(RunConfig, {"objective": {"name": "ul2", "denoisers": [denoiser]}})


def test_an_empty_mixture_is_refused():
    with pytest.raises(ConfigError, match="denoisers.*at least 1 item"):
        validate(RunConfig, {"objective": {"name": "ul2", "denoisers": []}})


def test_too_few_sentinels_name_the_denoiser():
    with pytest.raises(ConfigError, match=r"ul2 denoiser 3 \(X\) at data.seq_len=128 needs 17"):
        validate(RunConfig, {"objective": {"name": "ul2", "num_sentinels": 16}})
