"""The three registered tasks on a tiny bios world: row schema, stable ids, untouched model."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate import QaScoreConfig, build_requests, row_columns
from transferlab.models import build_model
from transferlab.worlds import ATTRIBUTES, BiosConfig, BiosWorld

N_PEOPLE = 12


@pytest.fixture(scope="module")
def world() -> BiosWorld:
    return BiosConfig(num_people=N_PEOPLE, seed=2).build()


@pytest.fixture(scope="module")
def tokenizer(world: BiosWorld) -> TextTokenizer:
    qa = [f"{item.question} {item.answer}\n" for item in world.qa_items()]
    return train_tokenizer(TokenizerConfig(), world.documents() + qa)


def _model(tokenizer: TextTokenizer, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, n_heads=2)
    return build_model(cfg)


TASK_SPECS = {
    "qa_score": {"name": "qa_score", "n_choices": 4, "n_shots": 1},
    "qa_probe": {"name": "qa_probe"},
    "qa_finetune": {"name": "qa_finetune", "steps": 3, "max_new_tokens": 4},
    "qa_finetune_lora": {"name": "qa_finetune", "method": "lora", "steps": 3, "max_new_tokens": 4},
}


def _run(
    spec: dict[str, Any], model: torch.nn.Module, tokenizer, world, run_id: str, seed: int = 0
):
    return TASKS.parse(spec).build().run(model, tokenizer, world, run_id, seed)


def test_registered() -> None:
    assert {"qa_finetune", "qa_probe", "qa_score"} <= set(TASKS.names())


@pytest.mark.parametrize("kind", sorted(TASK_SPECS))
def test_rows_schema_ids_and_untouched_model(kind: str, world, tokenizer) -> None:
    model = _model(tokenizer, seed=0)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    rows = _run(TASK_SPECS[kind], model, tokenizer, world, "run-a")
    assert all(torch.equal(model.state_dict()[name], value) for name, value in before.items())

    test_items = [item for item in world.qa_items() if item.split == "test"]
    assert [row["example_id"] for row in rows] == [item.id for item in test_items]
    for row, item in zip(rows, test_items, strict=True):
        assert tuple(row) == row_columns(TASKS.parse(TASK_SPECS[kind]))
        assert row["example_id"] == f"{item.person_id}:{item.attribute}"
        assert (row["run_id"], row["task"], row["split"]) == (
            "run-a",
            TASK_SPECS[kind]["name"],
            "test",
        )
        assert (row["group"], row["target"]) == (item.attribute, item.answer)
        assert row["correct"] in (0.0, 1.0)
        assert isinstance(row["prediction"], str)
        assert 0.0 <= row["p_correct"] <= 1.0

    # Another run (another model) evaluates the same examples, so rows can be paired.
    other = _run(TASK_SPECS[kind], _model(tokenizer, seed=1), tokenizer, world, "run-b")
    assert [row["example_id"] for row in other] == [row["example_id"] for row in rows]


def test_score_rows_are_consistent_with_their_scores(world, tokenizer) -> None:
    rows = _run(TASK_SPECS["qa_score"], _model(tokenizer, seed=0), tokenizer, world, "r")
    for row in rows:
        assert row["correct"] == float(row["prediction"] == row["target"])
        assert (row["margin"] > 0) == bool(row["correct"])
        assert row["acc_norm"] in (0.0, 1.0) and 0.0 <= row["norm_p_correct"] <= 1.0
    # Same seed, same model: identical rows.
    assert _run(TASK_SPECS["qa_score"], _model(tokenizer, seed=0), tokenizer, world, "r") == rows


def test_score_choices_and_shots_are_seeded_per_example(world, tokenizer) -> None:
    cfg = QaScoreConfig(n_choices=5, n_shots=2, eval_splits=["train", "test"])
    examples = build_requests(cfg, world, tokenizer, seed=0)
    names = {person.person_id: person.full_name for person in world.people}
    for example in examples:
        item = example.item
        assert len(set(example.choices)) == 5 and example.choices[example.gold] == item.answer
        assert set(example.choices) <= set(world.attribute_values(item.attribute))
        context = tokenizer.decode(example.request[0], skip_special_tokens=True)
        *shots, question = context.split("\n")
        assert question == item.question and len(shots) == 2
        assert all(names[item.person_id] not in shot for shot in shots)
    again = build_requests(cfg, world, tokenizer, seed=0)
    assert [e.request for e in again] == [e.request for e in examples]
    reseeded = build_requests(cfg, world, tokenizer, seed=1)
    assert [e.choices for e in reseeded] != [e.choices for e in examples]
    # An example's draws do not depend on which other examples are scored.
    one_attribute = QaScoreConfig(
        n_choices=5, n_shots=2, eval_splits=["train", "test"], attributes=["major"]
    )
    majors = {e.item.id: e.choices for e in examples if e.item.attribute == "major"}
    assert {
        e.item.id: e.choices for e in build_requests(one_attribute, world, tokenizer, 0)
    } == majors


def test_probe_all_layers_and_question_position(world, tokenizer) -> None:
    model = _model(tokenizer, seed=0)
    rows = _run({"name": "qa_probe", "layer": "all", "label": "p"}, model, tokenizer, world, "r")
    n_test = sum(person.split == "test" for person in world.people)
    assert sorted({row["task"] for row in rows}) == ["p@L0", "p@L1", "p@L2"]
    assert len(rows) == 3 * n_test * len(ATTRIBUTES)
    rows = _run(
        {"name": "qa_probe", "position": "question_last", "attributes": ["major"]},
        model,
        tokenizer,
        world,
        "r",
    )
    assert len(rows) == n_test and {row["group"] for row in rows} == {"major"}
    assert all("acc_norm" not in row and row["margin"] <= 1.0 for row in rows)


def test_probe_on_train_people_fits_them(world, tokenizer) -> None:
    # A probe with almost no regularization memorizes its own training people.
    spec = {"name": "qa_probe", "eval_splits": ["train"], "l2": 1e-6, "attributes": ["major"]}
    rows = _run(spec, _model(tokenizer, seed=0), tokenizer, world, "r")
    assert sum(row["correct"] for row in rows) / len(rows) == 1.0


def test_bad_configs_and_inputs_fail_clearly(world, tokenizer) -> None:
    with pytest.raises(ValueError, match="unknown attributes \\['salary'\\]"):
        TASKS.parse({"name": "qa_score", "attributes": ["salary"]})
    with pytest.raises(
        ValueError, match=r"n_choices=200 exceeds the \d+ values of 'major' the world's corpus"
    ):
        _run(
            {"name": "qa_score", "n_choices": 200, "attributes": ["major"]},
            _model(tokenizer, 0),
            tokenizer,
            world,
            "r",
        )
    with pytest.raises(ValueError, match="layer=5 is out of range for a model of 2 layers"):
        _run({"name": "qa_probe", "layer": 5}, _model(tokenizer, 0), tokenizer, world, "r")
    with pytest.raises(
        ValueError,
        match="task 'qa_score' asks questions about the bios world's people; got a object",
    ):
        _run({"name": "qa_score"}, _model(tokenizer, 0), tokenizer, object(), "r")
