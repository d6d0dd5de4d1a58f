"""``qa_classify``: a classification head per attribute, fine-tuned with the model, for models
of every reading (an mlm run end to end)."""

from __future__ import annotations

import pytest
import torch

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate import readers
from transferlab.evaluate.qa import select_items
from transferlab.evaluate.qa_classify import labelled_examples, value_heads
from transferlab.evaluate.qa_probe import prompt_texts
from transferlab.models import build_model
from transferlab.objectives import IGNORE_INDEX
from transferlab.worlds import BiosConfig, BiosWorld
from transferlab.worlds.bios import ATTRIBUTES

X = IGNORE_INDEX


@pytest.fixture(scope="module")
def bios() -> tuple[BiosWorld, TextTokenizer]:
    world = BiosConfig(num_people=12, seed=1).build()
    qa = [f"{item.question} {item.answer}" for item in world.qa_items()]
    return world, train_tokenizer(TokenizerConfig(), world.documents() + qa)


def _model(tokenizer: TextTokenizer) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_heads=2))


def test_heads_are_the_value_parts_and_examples_label_what_is_read(bios) -> None:
    world, _ = bios
    train = select_items(world, ["train"], ATTRIBUTES)
    heads = value_heads(train, ATTRIBUTES)
    assert [(h.attribute, h.part) for h in heads] == [
        ("birth_date", 0),
        ("birth_date", 1),
        ("birth_date", 2),
        *((a, 0) for a in ATTRIBUTES[1:]),
    ]
    cities = sorted({i.answer for i in train if i.attribute == "birth_city"})
    assert heads[3].classes == cities
    ids = {text: [1, n] for n, text in enumerate({*prompt_texts(world, train, "name_last")})}
    ids |= {text: [1, n] for n, text in enumerate(prompt_texts(world, train, "question_last"))}
    by_name = labelled_examples(train, prompt_texts(world, train, "name_last"), heads, ids)
    people = [p for p in world.people if p.split == "train"]
    assert len(by_name) == len(people)  # one example per person, every head labelled
    first = people[0]
    month, day, year = first.attributes()["birth_date"].replace(",", "").split()
    assert by_name[0][0] == ids[first.full_name]
    assert by_name[0][1][:4] == [
        heads[0].classes.index(month),
        heads[1].classes.index(day),
        heads[2].classes.index(year),
        cities.index(first.attributes()["birth_city"]),
    ]
    assert X not in by_name[0][1]
    by_question = labelled_examples(train, prompt_texts(world, train, "question_last"), heads, ids)
    assert len(by_question) == len(train)  # one per question: its attribute's heads only
    major = next(n for n, i in enumerate(train) if i.attribute == "major")
    labels = by_question[major][1]
    # heads: the date's three parts, birth_city, university, major (5), employer, ...
    assert [h for h, label in enumerate(labels) if label != X] == [5]
    assert labels[5] == heads[5].classes.index(train[major].answer)


def test_rows_pair_with_qa_probe_and_hold_consistent_metrics(bios) -> None:
    world, tokenizer = bios
    settings = {"steps": 4, "batch_size": 4, "eval_splits": ["train", "test"]}
    rows = (
        TASKS.parse({"name": "qa_classify", **settings})
        .build()
        .run(_model(tokenizer), tokenizer, world, "r0", seed=0)
    )
    probe = TASKS.parse({"name": "qa_probe", "max_iter": 2, "eval_splits": ["train", "test"]})
    probed = probe.build().run(_model(tokenizer), tokenizer, world, "r0", seed=0)
    assert [(r["example_id"], r["split"], r["target"]) for r in rows] == [
        (r["example_id"], r["split"], r["target"]) for r in probed
    ]
    assert len(rows) == 12 * 6
    for row in rows:
        assert row["task"] == "qa_classify" and row["group"] == row["example_id"].split(":")[1]
        assert row["correct"] == float(row["prediction"] == row["target"])
        assert 0.0 <= row["p_correct"] <= 1.0
        assert (row["margin"] > 0) == bool(row["correct"])


# One example per person reads six answers at once; one per question needs more steps.
@pytest.mark.parametrize(("position", "steps"), [("name_last", 60), ("question_last", 200)])
def test_the_heads_and_the_model_learn_the_train_people(bios, position, steps) -> None:
    world, tokenizer = bios
    cfg = {"name": "qa_classify", "position": position, "steps": steps, "batch_size": 8}
    cfg["lr"] = 1e-2
    task = TASKS.parse({**cfg, "eval_splits": ["train"]}).build()
    rows = task.run(_model(tokenizer), tokenizer, world, "r0", seed=0, reading="bidirectional")
    assert sum(r["correct"] for r in rows) / len(rows) > 0.9
    again = task.run(_model(tokenizer), tokenizer, world, "r0", seed=0, reading="bidirectional")
    assert again == rows  # seeded and deterministic


def test_the_task_reads_the_model_through_its_reading(bios, monkeypatch) -> None:
    world, tokenizer = bios
    seen = []
    real = readers.Reader.feature_forward

    def spy(self, model, inputs, lengths):
        seen.append(self.attention)
        return real(self, model, inputs, lengths)

    monkeypatch.setattr(readers.Reader, "feature_forward", spy)
    task = TASKS.parse({"name": "qa_classify", "steps": 1, "batch_size": 4}).build()
    task.run(_model(tokenizer), tokenizer, world, "r0", seed=0, reading="prefix")
    assert seen and set(seen) == {"prefix"}


def test_an_mlm_run_is_fine_tuned_end_to_end(tiny_config) -> None:
    from transferlab.train import load_run, train

    result = train(tiny_config("objective.name=mlm", "trainer.max_steps=4"))
    loaded = load_run(result.run_dir)
    assert loaded.config.objective.attention == "bidirectional"
    tokenizer = TextTokenizer.from_file(loaded.tokenizer_path)
    world = loaded.config.world.build()
    task = TASKS.parse({"name": "qa_classify", "steps": 3, "batch_size": 8}).build()
    rows = task.run(loaded.model, tokenizer, world, "mlm", seed=0, reading="bidirectional")
    test_people = {p.person_id for p in world.people if p.split == "test"}
    assert len(rows) == 6 * len(test_people)
    assert {int(r["example_id"].split(":")[0]) for r in rows} == test_people
