"""The `modular` world: disjoint seeded splits, correct answers, one token per residue, and a
full batch of the packed loader that holds every training equation exactly once."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from pydantic import ValidationError

from transferlab.config import RunConfig, validate
from transferlab.config.schemas import TokenizerConfig
from transferlab.data import PackedLoader, prepare_data
from transferlab.data.tokenizer import train_tokenizer
from transferlab.worlds import build_world
from transferlab.worlds.modular import (
    SPLITS,
    ModularConfig,
    pair_count,
    residue_token_ids,
    split_sizes,
)


def _pairs(world, split):
    return {(eq.a, eq.b) for eq in world.equations[split]}


def test_splits_are_disjoint_cover_every_pair_and_follow_the_fractions() -> None:
    cfg = ModularConfig(prime=31, train_fraction=0.5, validation_fraction=0.4)
    world = cfg.build()
    train, val, test = (_pairs(world, s) for s in SPLITS)
    assert not train & val and not train & test and not val & test
    assert train | val | test == {(a, b) for a in range(31) for b in range(31)}
    assert split_sizes(cfg) == {"train": 480, "validation": 192, "test": 289}  # 961 pairs
    assert [len(world.equations[s]) for s in SPLITS] == [480, 192, 289]


def test_the_seed_decides_the_split_and_the_same_seed_repeats_it() -> None:
    a, b = ModularConfig(prime=13, seed=0).build(), ModularConfig(prime=13, seed=0).build()
    other = ModularConfig(prime=13, seed=1).build()
    assert a.documents() == b.documents()
    assert _pairs(a, "train") != _pairs(other, "train")


@pytest.mark.parametrize(
    ("operation", "check"),
    [
        ("add", lambda a, b, c, p: c == (a + b) % p),
        ("subtract", lambda a, b, c, p: (c + b) % p == a),
        ("multiply", lambda a, b, c, p: c == a * b % p),
        ("divide", lambda a, b, c, p: c * b % p == a),
        ("x2_xy_y2", lambda a, b, c, p: c == (a * a + a * b + b * b) % p),
    ],
)
def test_every_answer_solves_its_equation(operation, check) -> None:
    cfg = ModularConfig(prime=11, operation=operation, train_fraction=0.5)
    world = cfg.build()
    equations = [eq for split in SPLITS for eq in world.equations[split]]
    assert len(equations) == pair_count(cfg) == (110 if operation == "divide" else 121)
    assert all(check(eq.a, eq.b, eq.answer, 11) and 0 <= eq.answer < 11 for eq in equations)
    assert all(eq.b != 0 for eq in equations) or operation != "divide"


def test_text_is_unspaced_and_the_corpus_closes_with_its_first_equation() -> None:
    world = ModularConfig(prime=5, operation="subtract", train_fraction=0.5).build()
    first = world.equations["train"][0]
    assert first.text == f"{first.a}-{first.b}={first.answer}"
    docs = world.documents()
    assert docs[:-1] == [eq.text for eq in world.equations["train"]] and docs[-1] == docs[0]
    assert world.validation_documents(3) == [eq.text for eq in world.equations["validation"][:3]]


def test_bad_configs_fail_in_one_line_naming_the_fix() -> None:
    with pytest.raises(ValidationError, match="prime=15 is not prime; use a prime"):
        ModularConfig(prime=15)
    with pytest.raises(ValidationError, match="leaves the validation split empty"):
        ModularConfig(prime=3, train_fraction=0.9)


def test_each_residue_is_one_token_and_the_answer_is_the_token_after_equals() -> None:
    world = ModularConfig(prime=97, operation="multiply", train_fraction=0.3).build()
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), world.tokenizer_texts())
    ids = residue_token_ids(tokenizer, 97)
    assert len(set(ids)) == 97
    for eq in world.equations["test"][:50]:  # never in the corpus, still one token each
        encoded = tokenizer.encode(eq.text)
        assert len(encoded) == 5
        assert encoded[-1] == ids[eq.answer] and encoded[0] == ids[eq.a]
        assert tokenizer.decode(encoded[-2:-1]) == "="


def test_a_tokenizer_that_splits_a_residue_is_refused() -> None:
    class Digits:  # one token per digit
        def encode(self, text):
            return [int(ch) for ch in text]

        def token_to_id(self, token):
            return int(token) if len(token) == 1 else None

    with pytest.raises(ValueError, match="residue 10 is not one token of its own"):
        residue_token_ids(Digits(), 11)


def test_a_full_batch_holds_every_training_equation_once(tmp_path) -> None:
    cfg = validate(
        RunConfig,
        {
            "name": "modular",
            "world": {"name": "modular", "prime": 7, "train_fraction": 0.5},
            "tokenizer": {"kind": "word"},
            "data": {"seq_len": 7, "val_fraction": 0.1},
            "trainer": {"batch_size": 24, "out_dir": str(tmp_path)},
        },
    )
    world = cfg.world.build()
    data = prepare_data(cfg)
    loader = PackedLoader(data.train_folder(), 7, 24, seed=0)
    assert loader.n_windows == 24 == len(world.equations["train"])
    batch = loader.global_batch()
    tokenizer = data.tokenizer()
    texts = [tokenizer.decode(row[1:-2].tolist()) for row in batch]  # drop bos, eos, next bos
    assert Counter(texts) == Counter(eq.text for eq in world.equations["train"])
    assert all(
        row[0] == tokenizer.special.bos and row[-2] == tokenizer.special.eos for row in batch
    )
    val = data.val_folder()
    assert val is not None and val.n_docs <= len(world.equations["validation"])


def test_written_world_lists_every_equation_with_its_split(tmp_path) -> None:
    cfg = ModularConfig(prime=7)
    out = build_world(cfg, tmp_path / "w")
    records = [json.loads(line) for line in (out / "equations.jsonl").read_text().splitlines()]
    assert len(records) == 49
    assert Counter(r["split"] for r in records) == Counter(split_sizes(cfg))
    assert json.loads((out / "world.json").read_text())["splits"] == split_sizes(cfg)
