"""A checkpoint whose files fail to load is named in one line (never with torch's advice to
unpickle with weights_only=False), and resuming falls back to the newest earlier checkpoint that
loads, saying so, with the same result as a run never interrupted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import TINY_RUN
from transferlab.artifacts import CorruptArtifact
from transferlab.cli import app
from transferlab.train import load_run, train
from transferlab.train.checkpoint import STATE_FILE, WEIGHTS_FILE, checkpoint_dir

runner = CliRunner()


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(b"not a checkpoint at all" * 10)


CORRUPTIONS = {WEIGHTS_FILE: _truncate, STATE_FILE: _garbage}


@pytest.mark.parametrize("file", [WEIGHTS_FILE, STATE_FILE])
def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tiny_config, file, caplog):
    cfg = tiny_config("trainer.keep_checkpoints=3")
    whole = train(tiny_config("trainer.out_dir=" + str(cfg.trainer.out_dir) + "-whole"))
    assert train(cfg, stop_after=8).steps == 8  # checkpoints of steps 4 and 8; max_steps is 8
    run_dir = Path(cfg.trainer.out_dir) / cfg.name
    newest = checkpoint_dir(run_dir, 8)
    CORRUPTIONS[file](newest / file)

    with caplog.at_level(logging.WARNING):
        resumed = train(cfg, resume=True)
    assert [m for m in caplog.messages if "corrupt" in m] == [
        f"checkpoint {newest} is corrupt: its {file} does not load "
        f"({'SafetensorError' if file == WEIGHTS_FILE else 'UnpicklingError'}); "
        f"moved it to {next(newest.parent.glob('step_00000008.corrupt-*'))} and trying the "
        "checkpoint before it"
    ]
    assert not any("weights_only" in m for m in caplog.messages)
    assert resumed.steps == 8
    final = load_file(str(checkpoint_dir(run_dir, 8) / WEIGHTS_FILE))
    expected = load_file(str(checkpoint_dir(whole.run_dir, 8) / WEIGHTS_FILE))
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[k], expected[k]) for k in final)
    steps = [
        json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 9))  # each step once, in order


@pytest.fixture
def run_yaml(tmp_path):
    data = {**TINY_RUN, "trainer": {**TINY_RUN["trainer"], "out_dir": str(tmp_path / "runs")}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_resume_with_no_checkpoint_that_loads_names_the_folder_in_one_line(
    run_yaml, tmp_path, caplog
):
    args = ["train", str(run_yaml), "trainer.max_steps=4", "trainer.checkpoint_interval=2"]
    assert runner.invoke(app, args).exit_code == 0
    run_dir = tmp_path / "runs" / "tiny"
    for step in (2, 4):
        _garbage(checkpoint_dir(run_dir, step) / STATE_FILE)
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 2
    assert "weights_only" not in result.output and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == (
        f"error: no checkpoint in {run_dir / 'checkpoints'} loads; delete that folder to train "
        "from step 0"
    )
    tried = [m.split(" is corrupt")[0] for m in caplog.messages if "is corrupt" in m]
    assert tried == [f"checkpoint {checkpoint_dir(run_dir, step)}" for step in (4, 2)]


def test_export_of_a_truncated_checkpoint_names_it(run_yaml, tmp_path):
    assert runner.invoke(app, ["train", str(run_yaml), "trainer.max_steps=4"]).exit_code == 0
    run_dir = tmp_path / "runs" / "tiny"
    _truncate(checkpoint_dir(run_dir, 4) / WEIGHTS_FILE)
    result = runner.invoke(app, ["export-hf", str(run_dir), str(tmp_path / "hf")])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        f"error: checkpoint {checkpoint_dir(run_dir, 4)} is corrupt: its {WEIGHTS_FILE} does not "
        "load (SafetensorError)"
    )
    with pytest.raises(CorruptArtifact):
        load_run(run_dir)
    assert not (tmp_path / "hf").exists()


def test_an_experiment_trains_a_run_again_from_before_its_corrupt_final_checkpoint(
    tmp_path, monkeypatch, caplog
):
    """The evaluations of a run whose final checkpoint does not load are computed from the run
    trained again from its newest loadable checkpoint: the same rows as before (exact resume)."""
    import shutil

    import pyarrow.parquet as pq

    from test_experiment_concurrent import SPEC
    from transferlab.experiment import ExperimentSpec, plan_experiment
    from transferlab.experiment.executor import execute

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    plan = plan_experiment(ExperimentSpec.model_validate(SPEC))
    execute(plan, log=lambda _: None)
    run = plan.runs[0]
    evals = plan.evals_of(run)
    before = [pq.read_table(e.rows_path) for e in evals]
    _truncate(checkpoint_dir(run.run_dir, 6) / WEIGHTS_FILE)
    for planned in evals:
        shutil.rmtree(planned.out_dir)

    with caplog.at_level(logging.WARNING):
        execute(plan, log=lambda _: None)
    assert [pq.read_table(e.rows_path) for e in evals] == before
    assert any("training the run again from the checkpoint before it" in m for m in caplog.messages)
    assert len(list((run.run_dir / "checkpoints").glob("step_00000006.corrupt-*"))) == 1
