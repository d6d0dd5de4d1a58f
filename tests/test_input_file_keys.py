"""Stages that read user files are keyed by what the files hold, not only by their paths: an
edited task file is evaluated again and an edited corpus is prepared and trained again, while
stages on no user files (a world, the standard library) keep the keys they always had."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tiny_experiment import tiny_base
from transferlab.artifacts import content_key
from transferlab.config import TASKS, RunConfig, validate
from transferlab.data.prepare import data_key
from transferlab.experiment import ExperimentSpec, load_results, plan_experiment, run_experiment
from transferlab.experiment import executor as executor_module
from transferlab.experiment.planner import EVAL_FORMAT_VERSION, eval_key
from transferlab.file_digests import MISSING, file_sha256, files_fingerprint
from transferlab.train.run_dir import config_key
from transferlab.worlds.bios import BiosConfig

STDLIB = {"name": "python_stdlib", "limit": 20}


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_a_digest_is_of_the_bytes_and_cached_by_size_and_mtime(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert file_sha256(path) == abc
    stat = path.stat()
    path.write_bytes(b"abd")  # same size; with the old mtime it passes for the old file
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_sha256(path) == abc
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert file_sha256(path) != abc
    assert files_fingerprint([path, tmp_path / "gone.txt", path]) == [
        [str(path), file_sha256(path)],
        [str(tmp_path / "gone.txt"), MISSING],
    ]


def test_keys_of_stages_on_no_user_files_are_those_of_before(tmp_path):
    """Pinned from the code before files were keyed: world and stdlib experiments keep the
    config keys they had then (an experiment's run key adds the budget, ``planner.run_key``,
    and an evaluation's key is still its run key and task config alone)."""

    def keyed_as_before(plan, config_key_before: str) -> None:
        (run,) = plan.runs
        assert run.key == content_key(config_key_before, {"max_steps": 2})
        assert [e.key for e in plan.evals] == [
            content_key(run.key, _task_key(e.task), EVAL_FORMAT_VERSION) for e in plan.evals
        ]

    world = ExperimentSpec.model_validate(
        {
            "name": "pin",
            "base": tiny_base(2),
            "seeds": [0],
            "tasks": [{"name": "qa_probe"}, {"name": "qa_score"}],
        }
    )
    plan = plan_experiment(world, store=tmp_path)
    keyed_as_before(plan, "8ae15ea1b260eb3a")
    assert data_key(plan.runs[0].config) == "684764fc02095843"
    base = tiny_base(2)
    base["data"]["sources"] = [STDLIB]
    code = ExperimentSpec.model_validate(
        {"name": "pin", "base": base, "seeds": [0], "tasks": [{"name": "code_likelihood"}]}
    )
    plan = plan_experiment(code, store=tmp_path)
    keyed_as_before(plan, "d214d7e954e5ed2c")
    assert data_key(plan.runs[0].config) == "13f419273b622d86"


def _task_key(task) -> dict:
    return {k: v for k, v in task.to_dict().items() if k != "stage"}


def _items(gold: list[int]) -> list[dict]:
    """Which last name follows a person's first and middle names, in the bios world's words."""
    people = [doc.split()[:3] for doc in BiosConfig(num_people=16).build().documents()[:3]]
    return [
        {
            "id": f"q{i}",
            "context": f"{first} {middle}",
            "choices": [p[2] for p in people],
            "gold": g,
        }
        for i, ((first, middle, _), g) in enumerate(zip(people, gold, strict=True))
    ]


def test_editing_a_task_file_in_place_evaluates_it_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    written = []
    write_eval = executor_module._write_eval

    def counted(planned, rows, notes):
        written.append(planned.task.task_name)
        write_eval(planned, rows, notes)

    monkeypatch.setattr(executor_module, "_write_eval", counted)
    items = tmp_path / "items.jsonl"
    write_jsonl(items, _items([0, 1, 2]))
    spec = ExperimentSpec.model_validate(
        {
            "name": "edits",
            "base": tiny_base(2),
            "seeds": [0],
            "tasks": [
                {"name": "multiple_choice", "path": str(items), "id_field": "id"},
                {"name": "qa_score"},
            ],
        }
    )

    def run() -> dict[str, str]:
        written.clear()
        result = run_experiment(spec, tmp_path / "exp", log=lambda _: None)
        rows = load_results(result.exp_dir).examples.to_pylist()
        return {r["example_id"]: r["target"] for r in rows if r["task"] == "multiple_choice"}

    first = run()
    assert sorted(written) == ["multiple_choice", "qa_score"]
    assert run() == first and written == []  # nothing changed: every evaluation is reused
    write_jsonl(items, _items([2, 1, 0]))  # the same path, other golds
    second = run()
    assert written == ["multiple_choice"]  # qa_score reads no file and is reused
    assert first["q0"] != second["q0"] == first["q2"] and second["q1"] == first["q1"]


@pytest.mark.parametrize(
    ("task", "files"),
    [
        ({"name": "multiple_choice", "path": "{d}/a.jsonl", "fewshot_path": "{d}/b.jsonl"}, 2),
        ({"name": "text_probe", "train_path": "{d}/a.jsonl", "test_path": "{d}/b.jsonl"}, 2),
        ({"name": "text_finetune", "path": "{d}/a.jsonl"}, 1),
        ({"name": "text_likelihood", "sources": [{"path": "{d}/*.jsonl"}]}, 2),
    ],
)
def test_every_task_on_user_files_names_them(tmp_path, task, files):
    for name in ("a", "b"):
        write_jsonl(tmp_path / f"{name}.jsonl", [{"text": name, "label": name}])
    cfg = TASKS.parse(json.loads(json.dumps(task).replace("{d}", str(tmp_path))))
    named = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"][:files]
    assert cfg.input_files() == named
    before = eval_key("run", cfg)
    (tmp_path / "a.jsonl").write_text('{"text": "edited", "label": "a"}\n')
    assert eval_key("run", cfg) != before


def _corpus_run(tmp_path: Path, source: dict) -> RunConfig:
    base = tiny_base(2)
    base["data"]["sources"] = [source]
    return validate(RunConfig, {**base, "trainer": {**base["trainer"], "out_dir": str(tmp_path)}})


@pytest.mark.parametrize("kind", ["jsonl", "curated"])
def test_an_edited_corpus_is_a_new_data_stage_and_run(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, [{"text": "one two three"}])
    source = {"name": "jsonl", "path": str(corpus)}
    if kind == "curated":
        source = {"name": "curated", "source": source}
    cfg = _corpus_run(tmp_path, source)
    keys = data_key(cfg), config_key(cfg)
    curated = cfg.data.sources[0].curated_dir() if kind == "curated" else None
    assert (data_key(cfg), config_key(cfg)) == keys  # the same bytes: the same stage
    write_jsonl(corpus, [{"text": "one two four"}])
    assert data_key(cfg) != keys[0] and config_key(cfg) != keys[1]
    if curated is not None:  # the curation of the old bytes is not reused either
        assert cfg.data.sources[0].curated_dir() != curated
