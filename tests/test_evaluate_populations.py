"""QA tasks on a bios world with populations: train on one group and test on another, rows that
carry each person's population and exposures, and one-line errors for populations a world lacks."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest
import torch

from tiny_experiment import tiny_base
from transferlab.config import TASKS, ConfigError, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import train_tokenizer
from transferlab.evaluate import check_rows, row_columns
from transferlab.evaluate.qa import select_items
from transferlab.experiment import ExperimentSpec, load_results, plan_experiment, run_experiment
from transferlab.models import build_model
from transferlab.worlds import ATTRIBUTES, BiosConfig
from transferlab.worlds.bios_populations import PopulationSplit

POPULATIONS = [
    {
        "name": "celebrities",
        "count": 6,
        "rephrasings": 2,
        "exposures": {"dist": "zipf", "exponent": 1.0, "max": 4},
    },
    {"name": "ordinary", "count": 8, "exposures": 1},
]


@pytest.fixture(scope="module")
def world():
    return BiosConfig(num_people=14, seed=2, populations=POPULATIONS).build()


@pytest.fixture(scope="module")
def tokenizer(world):
    qa = [f"{item.question} {item.answer}\n" for item in world.qa_items()]
    return train_tokenizer(TokenizerConfig(), world.documents() + qa)


def _model(tokenizer):
    torch.manual_seed(0)
    return build_model(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1))


def _people(items) -> dict[int, str]:
    return {item.person_id: item.split for item in items}


@pytest.mark.parametrize(
    ("population", "split", "train", "eval", "expected"),
    [
        ("a", "test", None, None, "test"),  # the default keeps the world's split
        ("a", "test", ("a",), ("a",), "test"),  # one group on both sides: its split
        ("a", "test", ("a",), ("b",), "train"),  # only trained on: all QA-train
        ("b", "train", ("a",), ("b",), "test"),  # only evaluated: all QA-test
        ("c", "train", ("a",), ("b",), None),  # on neither side: left out
        ("b", "train", ("a",), None, "test"),  # eval all, train a: b only evaluated
    ],
)
def test_population_split_of_a_person(population, split, train, eval, expected):
    assert PopulationSplit(train, eval).split_of(population, split) == expected


def test_items_train_on_one_population_and_test_on_another(world):
    group = {p: m.population.name for p, m in enumerate(world.memberships)}
    across = PopulationSplit(("celebrities",), ("ordinary",))
    train = select_items(world, ["train"], ATTRIBUTES, populations=across)
    test = select_items(world, ["test"], ATTRIBUTES, populations=across)
    assert set(_people(train)) == {p for p in group if group[p] == "celebrities"}
    assert set(_people(test)) == {p for p in group if group[p] == "ordinary"}
    assert len(train) == 6 * len(ATTRIBUTES) and len(test) == 8 * len(ATTRIBUTES)
    # Within one population the world's person split applies.
    within = PopulationSplit(("ordinary",), ("ordinary",))
    drawn = {p.person_id: p.split for p in world.people if group[p.person_id] == "ordinary"}
    assert _people(select_items(world, ["train", "test"], ATTRIBUTES, populations=within)) == drawn
    assert {"train", "test"} == set(drawn.values())
    # The default is the world's split of everyone.
    assert select_items(world, ["test"], ATTRIBUTES) == [
        item for item in world.qa_items() if item.split == "test"
    ]


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "qa_score", "n_choices": 4, "n_shots": 1},
        {"name": "qa_probe", "max_iter": 20},
        {"name": "qa_finetune", "steps": 2, "max_new_tokens": 3},
    ],
)
def test_rows_carry_population_exposures_and_documents(spec, world, tokenizer):
    cfg = TASKS.parse(
        {**spec, "train_populations": ["celebrities"], "eval_populations": ["ordinary"]}
    )
    rows = cfg.build().run(_model(tokenizer), tokenizer, world, "r", 0)
    check_rows(cfg, rows)
    assert len(rows) == 8 * len(ATTRIBUTES)
    for row in rows:
        person_id = int(row["example_id"].split(":")[0])
        membership = world.memberships[person_id]
        assert row["population"] == "ordinary" == membership.population.name
        assert (row["exposures"], row["documents"]) == (membership.exposures, membership.documents)
        assert row["split"] == "test"
        assert tuple(row) == (*row_columns(cfg), "population", "exposures", "documents")


def test_check_rows_takes_declared_facets_only():
    cfg = TASKS.parse("qa_score")
    row = {column: 0.0 for column in row_columns(cfg)}
    assert check_rows(cfg, [row | {"population": "a", "exposures": 2}]) is not None
    with pytest.raises(ValueError, match=re.escape("with undeclared ['age']")):
        check_rows(cfg, [row | {"age": 3}])


def test_populations_a_world_lacks_fail_in_one_line(tokenizer):
    plain = BiosConfig(num_people=14, seed=2).build()
    task = TASKS.parse({"name": "qa_score", "n_choices": 4, "eval_populations": ["ordinary"]})
    with pytest.raises(ValueError, match="name \\['ordinary'\\] but the world has no populations"):
        task.build().run(_model(tokenizer), tokenizer, plain, "r", 0)
    with pytest.raises(ValueError, match=re.escape("unknown population(s) ['stars']")):
        TASKS.parse({"name": "qa_probe", "train_populations": ["stars"]}).check_world(
            BiosConfig(num_people=14, populations=POPULATIONS)
        )
    # An experiment refuses it when planned, before anything trains.
    spec = ExperimentSpec.model_validate(
        {"name": "x", "base": tiny_base(2), "tasks": [task.to_dict()]}
    )
    with pytest.raises(ConfigError, match="task 'qa_score' on run variant 'base': train_pop"):
        plan_experiment(spec)


def test_task_keys_without_populations_are_those_before():
    for name in ("qa_score", "qa_probe", "qa_finetune"):
        assert not {"train_populations", "eval_populations"} & set(TASKS.parse(name).to_dict())


def test_a_tiny_experiments_rows_break_down_by_population(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    base = tiny_base(2)
    base["world"] = {
        "name": "bios",
        "num_people": 16,
        "populations": [
            {
                "name": "celebrities",
                "share": 0.5,
                "rephrasings": 2,
                "exposures": {"dist": "zipf", "max": 3},
            },
            {"name": "ordinary", "share": 0.5},
        ],
    }
    spec = ExperimentSpec.model_validate(
        {"name": "pop", "base": base, "tasks": [{"name": "qa_probe", "max_iter": 10}]}
    )
    run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    rows = load_results(tmp_path / "exp").examples.to_pylist()
    world = BiosConfig.model_validate(base["world"]).build()
    assert len(rows) == 8 * len(ATTRIBUTES)  # half of each population is QA-test
    assert {row["population"] for row in rows} == {"celebrities", "ordinary"}
    for row in rows:
        membership = world.memberships[int(row["example_id"].split(":")[0])]
        assert (row["population"], row["exposures"], row["documents"]) == (
            membership.population.name,
            membership.exposures,
            membership.documents,
        )
    people = pq.read_table(tmp_path / "exp" / "results" / "examples.parquet").column_names
    assert {"population", "exposures", "documents"} <= set(people)
