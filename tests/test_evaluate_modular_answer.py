"""`modular_answer`: one row per equation of the asked split, scored among the p residues."""

from __future__ import annotations

import pytest
import torch

from modular_setup import TRAIN_PAIRS, modular_run
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate import check_rows
from transferlab.evaluate.modular_answer import ModularAnswerConfig
from transferlab.train import train
from transferlab.train.checkpoint import load_run
from transferlab.worlds import BiosConfig
from transferlab.worlds.modular import ModularConfig, residue_token_ids


@pytest.fixture(scope="module")
def memorized(tmp_path_factory):
    """A run that has memorized the 60 training equations of p = 11 (full batch, no decay)."""
    cfg = modular_run(tmp_path_factory.mktemp("runs"), steps=150)
    loaded = load_run(train(cfg).run_dir)
    return loaded, TextTokenizer.from_file(loaded.tokenizer_path), cfg.world.build()


def _rows(memorized, split: str):
    loaded, tokenizer, world = memorized
    task = ModularAnswerConfig(split=split)
    return task, task.build().run(loaded.model, tokenizer, world, "run", 0, "causal")


def test_rows_follow_the_declaration_and_cover_exactly_the_split(memorized) -> None:
    world = memorized[2]
    for split in ("train", "validation", "test"):
        task, rows = _rows(memorized, split)
        assert check_rows(task, rows) == rows
        assert [r["example_id"] for r in rows] == [eq.id for eq in world.equations[split]]
        assert {r["split"] for r in rows} == {split}
        for row in rows:
            assert row["correct"] == float(row["prediction"] == row["target"])
            assert 0.0 <= row["p_correct"] <= 1.0
            assert (row["margin"] > 0) == (row["correct"] == 1.0)


def test_a_memorized_training_set_is_answered_and_the_test_set_is_not(memorized) -> None:
    train_acc = sum(r["correct"] for r in _rows(memorized, "train")[1]) / TRAIN_PAIRS
    test_rows = _rows(memorized, "test")[1]
    test_acc = sum(r["correct"] for r in test_rows) / len(test_rows)
    assert train_acc == 1.0
    assert test_acc < 0.5  # 121 - 60 pairs unseen; addition is not learned from 60 in 150 steps


def test_p_correct_is_the_softmax_over_the_residues_alone(memorized) -> None:
    loaded, tokenizer, world = memorized
    eq = world.equations["test"][0]
    row = _rows(memorized, "test")[1][0]
    ids = torch.tensor([[tokenizer.special.bos, *tokenizer.encode(eq.prompt)]])
    with torch.no_grad():
        logits = loaded.model(ids)[0, -1]
    residues = residue_token_ids(tokenizer, 11)
    expected = logits[residues].double().softmax(0)[eq.answer]
    assert row["p_correct"] == pytest.approx(float(expected), abs=1e-5)
    assert row["prediction"] == str(int(logits[residues].argmax()))


def test_another_world_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="use world.name=modular"):
        ModularAnswerConfig().check_world(BiosConfig(num_people=4))
    ModularAnswerConfig().check_world(ModularConfig(prime=5))  # accepted
