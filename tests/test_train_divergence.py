"""trainer.on_divergence: raise (the default) fails a run whose loss or gradient norm becomes
NaN/inf; stop ends it at that step as a finished run recorded as diverged."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.config import ConfigError, RunConfig, validate
from transferlab.train import TrainingDiverged, load_run, read_metrics, train
from transferlab.train.checkpoint import checkpoint_step, list_checkpoints
from transferlab.train.engine import Engine
from transferlab.train.run_dir import config_key, diverged_step

# lr 1e6 makes the second step's gradient NaN (the first update throws the weights far out).
HUGE_LR = ("optimizer.lr=1e6", "trainer.checkpoint_interval=1")


def test_stop_ends_the_run_at_the_diverging_step_and_records_it(tiny_config):
    cfg = tiny_config(*HUGE_LR, "trainer.on_divergence=stop", "trainer.log_interval=4")
    result = train(cfg)
    run = result.run_dir

    assert (result.steps, result.diverged_step, result.interrupted) == (2, 2, False)
    assert math.isnan(result.val_loss)
    info = json.loads((run / "run_info.json").read_text())
    assert (info["diverged"], info["diverged_step"]) == (True, 2)
    assert diverged_step(run) == 2
    # The diverged step has its row (off the log interval of 4), with the non-finite gradient
    # norm, a NaN validation loss and the mark; step 1 was not logged (no interval, no eval).
    (row,) = read_metrics(run / "metrics.jsonl")
    assert (row["step"], row["tokens"], row["diverged"]) == (2, 2 * 8 * 32, True)
    assert math.isnan(row["grad_norm"]) and math.isnan(row["val_loss"])
    # No checkpoint holds the diverged step; the one before it is finite.
    assert [checkpoint_step(p) for p in list_checkpoints(run)] == [1]
    assert all(torch.isfinite(p).all() for p in load_run(run).model.parameters())


def test_stop_records_a_nan_loss_in_the_row_of_its_step(tiny_config, monkeypatch):
    real = Engine.micro_loss

    def poisoned(self, model, micro):
        out = real(self, model, micro)
        if self.step == 5:
            out.sum = out.sum * math.nan
        return out

    monkeypatch.setattr(Engine, "micro_loss", poisoned)
    result = train(tiny_config("trainer.on_divergence=stop"))
    rows = read_metrics(result.run_dir / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert math.isnan(rows[-1]["train_loss"]) and rows[-1]["diverged"]
    assert all(math.isfinite(row["train_loss"]) and "diverged" not in row for row in rows[:-1])
    assert (result.diverged_step, diverged_step(result.run_dir)) == (6, 6)


def test_a_run_that_does_not_diverge_trains_the_same_under_stop_and_raise(tiny_config):
    raised = train(tiny_config("name=raise"))
    stopped = train(tiny_config("name=stop", "trainer.on_divergence=stop"))
    timing = {"tokens_per_s", "elapsed_s"}

    def losses(run):
        rows = read_metrics(run / "metrics.jsonl")
        return [{k: v for k, v in row.items() if k not in timing} for row in rows]

    assert losses(stopped.run_dir) == losses(raised.run_dir)
    assert (stopped.steps, stopped.diverged_step, diverged_step(stopped.run_dir)) == (8, None, None)
    assert "diverged" not in json.loads((stopped.run_dir / "run_info.json").read_text())


def test_raise_is_the_default_and_keeps_the_run_key(tiny_config):
    assert config_key(RunConfig()) == "70326e30c912ec0b"  # pinned before the field existed
    explicit = validate(RunConfig, {"trainer": {"on_divergence": "raise"}})
    stop = validate(RunConfig, {"trainer": {"on_divergence": "stop"}})
    assert config_key(explicit) == config_key(RunConfig()) != config_key(stop)
    with pytest.raises(TrainingDiverged, match=r"became nan at step 2; the last good checkpoint"):
        train(tiny_config(*HUGE_LR))
    with pytest.raises(ConfigError, match=r"trainer.on_divergence.*'raise' or 'stop'"):
        validate(RunConfig, {"trainer": {"on_divergence": "skip"}})


def test_train_cli_reports_a_diverged_run_and_exits_0(tiny_config, tmp_path):
    cfg = tiny_config(*HUGE_LR, "trainer.on_divergence=stop")
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(cfg.to_dict()))  # JSON is YAML
    ran = CliRunner().invoke(app, ["train", str(path)])
    assert ran.exit_code == 0, ran.output
    flat = " ".join(ran.output.split())
    assert "diverged at step 2 (trainer.on_divergence: stop)" in flat
    assert "in 2 steps; train loss" in flat and "val loss nan" in flat
    raised = CliRunner().invoke(
        app, ["train", str(path), "name=raise", "trainer.on_divergence=raise"]
    )
    assert raised.exit_code == 1
    assert "became nan at step 2" in raised.output
