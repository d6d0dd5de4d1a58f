"""Commands that write to a path the user names never delete what the user has there: an existing
path that is not an earlier output of the same kind is refused in one line naming it, ``--force``
replaces only such an output, and a path that is (or holds, or lies inside) the command's own
input is always refused."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from conftest import TINY_RUN
from transferlab.cli import app
from transferlab.train import train

runner = CliRunner()


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    lines = [line for line in text.splitlines() if line]
    assert len(lines) == 1, text
    message = " ".join(text.split())  # rich may wrap; compare the words
    for needle in needles:
        assert " ".join(str(needle).split()) in message, (needle, message)
    return message


def _user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    cfg_dir = tmp_path_factory.mktemp("run")
    data = {**TINY_RUN, "trainer": {**TINY_RUN["trainer"], "out_dir": str(cfg_dir / "runs")}}
    data["trainer"]["max_steps"] = 4
    from transferlab.config import RunConfig, validate

    return train(validate(RunConfig, data)).run_dir


def _checkpoint_files(run_dir):
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize("target", ["run", "checkpoints", "parent"])
def test_export_into_or_over_its_own_run_is_always_refused(trained_run, target):
    out = {
        "run": trained_run,
        "checkpoints": trained_run / "checkpoints",
        "parent": trained_run.parent,
    }[target]
    before = _checkpoint_files(trained_run)
    result = runner.invoke(app, ["export-hf", str(trained_run), str(out), "--force"])
    _one_line_error(result, str(out), "which it is made from", "choose a path outside it")
    assert _checkpoint_files(trained_run) == before


def test_export_refuses_a_users_folder_even_with_force(trained_run, tmp_path):
    out = _user_folder(tmp_path / "mine")
    for extra in ([], ["--force"]):
        result = runner.invoke(app, ["export-hf", str(trained_run), str(out), *extra])
        _one_line_error(result, str(out), "is not a hf-export transferlab wrote", "another path")
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
        assert (out / "notes.txt").read_text() == "mine"


def test_export_again_needs_force_and_then_replaces_only_its_own_export(trained_run, tmp_path):
    out = tmp_path / "hf"
    assert runner.invoke(app, ["export-hf", str(trained_run), str(out)]).exit_code == 0
    assert (out / "COMPLETE").read_text() == "hf-export"
    (out / "config.json").write_text("{}")  # so that a replacement shows

    again = runner.invoke(app, ["export-hf", str(trained_run), str(out)])
    _one_line_error(again, str(out), "already holds a hf-export", "--force")
    assert (out / "config.json").read_text() == "{}"

    forced = runner.invoke(app, ["export-hf", str(trained_run), str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"


def test_export_into_an_empty_folder_is_allowed(trained_run, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert runner.invoke(app, ["export-hf", str(trained_run), str(out)]).exit_code == 0
    assert (out / "model.safetensors").is_file()


@pytest.fixture
def run_yaml(tmp_path):
    path = tmp_path / "cfg" / "run.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(TINY_RUN))
    return path


@pytest.mark.parametrize("target", ["config", "folder"])
def test_world_build_over_its_config_is_always_refused(run_yaml, target):
    out = run_yaml if target == "config" else run_yaml.parent
    text = run_yaml.read_text()
    result = runner.invoke(app, ["world", "build", str(run_yaml), "--out", str(out), "--force"])
    _one_line_error(result, str(out), "choose a path outside it")
    assert run_yaml.read_text() == text


def test_world_build_refuses_a_users_folder_and_rebuilds_its_own_with_force(run_yaml, tmp_path):
    mine = _user_folder(tmp_path / "mine")
    args = ["world", "build", str(run_yaml), "world.num_people=12", "--out"]
    refused = runner.invoke(app, [*args, str(mine), "--force"])
    _one_line_error(refused, str(mine), "is not a world transferlab wrote")
    assert (mine / "notes.txt").read_text() == "mine"

    world = tmp_path / "world"
    assert runner.invoke(app, [*args, str(world)]).exit_code == 0
    _one_line_error(runner.invoke(app, [*args, str(world)]), "already holds a world", "--force")
    assert runner.invoke(app, [*args, str(world), "--force"]).exit_code == 0
    assert (world / "COMPLETE").read_text() == "world"


def _job(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs = [
        {"text": f"Document number {i} says something different about item {i}."} for i in range(5)
    ]
    (corpus / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump({"sources": [{"name": "jsonl", "path": str(corpus / "*.jsonl")}]})
    )
    return job, corpus


def test_curate_refuses_a_users_folder_and_its_own_sources(tmp_path):
    job, corpus = _job(tmp_path)
    mine = _user_folder(tmp_path / "mine")
    refused = runner.invoke(app, ["data", "curate", str(job), "--out", str(mine), "--force"])
    _one_line_error(refused, str(mine), "is not a curation transferlab wrote")
    assert (mine / "notes.txt").read_text() == "mine"

    over_source = runner.invoke(app, ["data", "curate", str(job), "--out", str(corpus)])
    _one_line_error(over_source, str(corpus), "which it is made from")
    assert (corpus / "docs.jsonl").is_file()

    out = tmp_path / "curated"
    assert runner.invoke(app, ["data", "curate", str(job), "--out", str(out)]).exit_code == 0
    again = runner.invoke(app, ["data", "curate", str(job), "--out", str(out)])
    _one_line_error(again, "already holds a curation", "--force")
    forced = runner.invoke(app, ["data", "curate", str(job), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
