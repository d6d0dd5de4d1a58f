"""`equation_lm`: the loss is on the answer after `=` only, one target per packed equation."""

from __future__ import annotations

import json

import pytest
import torch

from modular_setup import TRAIN_PAIRS, modular_run
from transferlab.config.schemas import TokenizerConfig
from transferlab.data import PackedLoader, prepare_data
from transferlab.data.tokenizer import train_tokenizer
from transferlab.objectives import IGNORE_INDEX, EquationLmConfig
from transferlab.objectives.context import TextContext
from transferlab.train import train
from transferlab.worlds.modular import residue_token_ids


def test_targets_are_the_answers_and_nothing_else(tmp_path) -> None:
    cfg = modular_run(tmp_path)
    data = prepare_data(cfg)
    tokenizer = data.tokenizer()
    objective = cfg.objective.build(data.special, data.vocab_size, TextContext(tokenizer))
    batch = objective.make_batch(
        PackedLoader(data.train_folder(), 7, TRAIN_PAIRS).global_batch(), torch.Generator()
    )
    targets, inputs = batch["targets"], batch["inputs"]
    kept = targets != IGNORE_INDEX
    assert objective.n_targets(batch) == TRAIN_PAIRS
    assert kept.sum(dim=1).tolist() == [1] * TRAIN_PAIRS
    equals = tokenizer.token_to_id("=")
    assert (inputs[kept] == equals).all()  # the position that reads "=" predicts the answer
    residues = residue_token_ids(tokenizer, 11)
    world = cfg.world.build()
    by_prompt = {eq.prompt: residues[eq.answer] for eq in world.equations["train"]}
    for row, target in zip(inputs, targets[kept], strict=True):
        assert by_prompt[tokenizer.decode(row[1:5].tolist())] == target


def test_a_marker_the_tokenizer_lacks_is_refused_in_one_line() -> None:
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), ["1+2=3"])
    with pytest.raises(ValueError, match=r"objective.marker '#' is not a token"):
        EquationLmConfig(marker="#").build(
            tokenizer.special, tokenizer.vocab_size, TextContext(tokenizer)
        )
    with pytest.raises(ValueError, match="build it with a TextContext"):
        EquationLmConfig().build(tokenizer.special, tokenizer.vocab_size)


def test_full_batch_training_lowers_the_answer_loss(tmp_path) -> None:
    result = train(modular_run(tmp_path, steps=40))
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [row["train_loss"] for row in rows if "train_loss" in row]
    # Chance over the vocabulary is log(V) ~ 2.8 nats; 60 pairs are mostly memorized in 40 steps.
    assert losses[0] > 1.5 and losses[-1] < 0.5 * losses[0]
    assert result.tokens == 40 * TRAIN_PAIRS * 7
