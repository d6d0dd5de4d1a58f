"""The reverse-question tasks on a tiny bios world: choices among people, rows that pair with the
forward task's per fact, fine-tuning on both directions, and the one-line refusals."""

from __future__ import annotations

import pytest
import torch

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate import build_requests, row_columns
from transferlab.evaluate import qa_finetune as qa_finetune_module
from transferlab.evaluate.qa import encode_answer, encode_prompt, shot_separator
from transferlab.models import build_model
from transferlab.worlds import BiosConfig, BiosWorld


@pytest.fixture(scope="module")
def world() -> BiosWorld:
    return BiosConfig(num_people=24, seed=0).build()


@pytest.fixture(scope="module")
def tokenizer(world: BiosWorld) -> TextTokenizer:
    return train_tokenizer(TokenizerConfig(kind="word"), world.tokenizer_texts())


def _model(tokenizer: TextTokenizer, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(
        ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2)
    )


def test_reverse_choices_are_the_name_among_other_corpus_people(world, tokenizer) -> None:
    cfg = TASKS.parse({"name": "qa_reverse_score", "n_choices": 5, "n_shots": 1})
    examples = build_requests(cfg, world, tokenizer, seed=3)
    reverse = [q for q in world.reverse_qa_items() if q.split == "test"]
    assert [ex.item for ex in examples] == reverse
    names = set(world.full_names())
    for ex in examples:
        assert len(set(ex.choices)) == 5 and set(ex.choices) <= names
        assert ex.choices[ex.gold] == ex.item.answer == world.people[ex.item.person_id].full_name
        context, choices = ex.request
        question = tokenizer.encode(ex.item.question)
        assert context[-len(question) :] == question
        # the shot: another QA-train person's reverse question about the same attribute
        separator = shot_separator(tokenizer)
        shots = [
            [tokenizer.special.bos, *tokenizer.encode(f"{q.question} {q.answer}"), *separator]
            for q in world.reverse_qa_items()
            if q.split == "train"
            and q.attribute == ex.item.attribute
            and q.person_id != ex.item.person_id
        ]
        assert context[: -len(question)] in shots
        assert choices == [encode_answer(tokenizer, c) for c in ex.choices]
    again = build_requests(cfg, world, tokenizer, seed=3)
    assert [ex.choices for ex in again] == [ex.choices for ex in examples]
    other = build_requests(cfg, world, tokenizer, seed=4)
    assert [ex.choices for ex in other] != [ex.choices for ex in examples]


def test_reverse_rows_pair_with_the_forward_rows_of_each_fact(world, tokenizer) -> None:
    model = _model(tokenizer)
    forward = TASKS.parse({"name": "qa_score", "n_choices": 4}).build()
    reverse_cfg = TASKS.parse({"name": "qa_reverse_score", "n_choices": 4})
    rows = reverse_cfg.build().run(model, tokenizer, world, "run-a", seed=0)
    forward_rows = forward.run(model, tokenizer, world, "run-a", seed=0)
    assert [r["example_id"] for r in rows] == [r["example_id"] for r in forward_rows]
    people = {p.full_name: p for p in world.people}
    for row, fwd in zip(rows, forward_rows, strict=True):
        assert tuple(row) == row_columns(reverse_cfg)
        assert (row["task"], row["group"], row["split"]) == (
            "qa_reverse_score",
            fwd["group"],
            fwd["split"],
        )
        person = people[row["target"]]
        assert row["example_id"] == f"{person.person_id}:{row['group']}"
        assert row["prediction"] in people
        assert row["correct"] == float(row["prediction"] == row["target"])


def test_reverse_finetune_tunes_on_both_directions_and_answers_one(
    world, tokenizer, monkeypatch
) -> None:
    tuned: list[list] = []
    real = qa_finetune_module.finetune

    def spy(model, pairs, *args, **kwargs):
        tuned.append(list(pairs))
        return real(model, pairs, *args, **kwargs)

    monkeypatch.setattr(qa_finetune_module, "finetune", spy)
    model = _model(tokenizer)
    spec = {"name": "qa_reverse_finetune", "steps": 2, "max_new_tokens": 4}
    reverse = TASKS.parse(spec).build().run(model, tokenizer, world, "run-a", seed=0)
    forward = (
        TASKS.parse({**spec, "direction": "forward"})
        .build()
        .run(model, tokenizer, world, "run-a", seed=0)
    )
    train = [
        q
        for items in (world.qa_items(), world.reverse_qa_items())
        for q in items
        if q.split == "train"
    ]
    expected = [
        (encode_prompt(tokenizer, q.question), encode_answer(tokenizer, q.answer, eos=True))
        for q in train
    ]
    assert tuned == [expected, expected]  # the same fine-tuning for both directions
    test_reverse = [q for q in world.reverse_qa_items() if q.split == "test"]
    assert [(r["example_id"], r["target"]) for r in reverse] == [
        (q.id, q.answer) for q in test_reverse
    ]
    assert [r["example_id"] for r in forward] == [r["example_id"] for r in reverse]
    assert {r["task"] for r in reverse + forward} == {"qa_reverse_finetune"}
    forward_answers = {q.id: q.answer for q in world.qa_items()}
    assert [r["target"] for r in forward] == [forward_answers[r["example_id"]] for r in forward]


class _Tuned(Exception):
    """Raised by a stand-in for ``finetune`` with the pairs it was given."""


def _stop_at_finetune(model, pairs, *args, **kwargs):
    raise _Tuned(list(pairs))


def test_reverse_finetune_on_forward_only_tunes_as_qa_finetune(world, tokenizer, monkeypatch):
    monkeypatch.setattr(qa_finetune_module, "finetune", _stop_at_finetune)
    tuned = []
    for spec in (
        {"name": "qa_finetune", "steps": 1},
        {"name": "qa_reverse_finetune", "steps": 1, "train_directions": ["forward"]},
    ):
        with pytest.raises(_Tuned) as stopped:
            TASKS.parse(spec).build().run(_model(tokenizer), tokenizer, world, "r", seed=0)
        tuned.append(stopped.value.args[0])
    assert tuned[0] == tuned[1] and len(tuned[0]) == 6 * len(world.split()["train"])


def test_bad_reverse_configs_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match=r"train_directions \['reverse', 'reverse'\] repeats"):
        TASKS.parse({"name": "qa_reverse_finetune", "train_directions": ["reverse", "reverse"]})
    with pytest.raises(ValueError, match="Input should be 'forward' or 'reverse'"):
        TASKS.parse({"name": "qa_reverse_finetune", "direction": "backward"})


def test_a_reverse_question_with_an_unknown_word_is_refused_in_one_line() -> None:
    small = BiosConfig(num_people=16, seed=0).build()  # its corpus never says "studied"
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), small.tokenizer_texts())
    cfg = TASKS.parse({"name": "qa_reverse_score", "n_choices": 2, "eval_splits": ["train"]})
    with pytest.raises(ValueError, match=r"qa_reverse_score: the context of example 0:university"):
        build_requests(cfg, small, tokenizer, seed=0)
