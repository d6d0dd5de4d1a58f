"""A run of ``trainer.max_steps: 0`` is its model at initialization: checkpoint 0, keyed apart
from the trained runs of its config, planned, cached and read by tasks like any run."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch

from tiny_experiment import tiny_base
from transferlab.config import ConfigError, RunConfig, validate
from transferlab.experiment import ExperimentSpec, plan_experiment
from transferlab.experiment import executor as executor_module
from transferlab.models import build_model
from transferlab.train import load_run, train
from transferlab.train.checkpoint import checkpoint_step, list_checkpoints
from transferlab.train.run_dir import config_key


def test_a_run_of_zero_steps_saves_its_initialization_as_checkpoint_0(tiny_config) -> None:
    result = train(tiny_config("trainer.max_steps=0"))
    assert (result.steps, result.tokens, result.train_loss, result.val_loss) == (0, 0, None, None)
    assert [checkpoint_step(p) for p in list_checkpoints(result.run_dir)] == [0]
    loaded = load_run(result.run_dir)
    torch.manual_seed(loaded.config.seed)  # as the trainer initializes the model
    fresh = build_model(loaded.config.model)
    state = loaded.model.state_dict()
    assert state.keys() == fresh.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in fresh.state_dict().items())


def test_zero_steps_enter_the_key_while_other_step_counts_stay_out(tiny_config) -> None:
    untrained = config_key(tiny_config("trainer.max_steps=0"))
    trained = {config_key(tiny_config(f"trainer.max_steps={n}")) for n in (8, 20)}
    assert len(trained) == 1  # a longer run continues the cached one
    assert untrained not in trained


def test_zero_steps_skip_the_schedule_check_and_refuse_callbacks(tiny_config) -> None:
    # warmup_steps=2 >= 0 steps: nothing is scheduled, so nothing to refuse
    assert tiny_config("trainer.max_steps=0").schedule.warmup_steps == 2
    with pytest.raises(ValueError, match="must be less than trainer.max_steps=2"):
        tiny_config("trainer.max_steps=2")
    data = tiny_config("trainer.max_steps=0").to_dict()
    data["trainer"]["callbacks"] = [{"name": "stability"}]
    with pytest.raises(ConfigError, match=r"max_steps=0 trains nothing, so trainer.callbacks "):
        validate(RunConfig, data)
    with pytest.raises(ConfigError, match="max_steps"):
        tiny_config("trainer.max_steps=-1")


def test_an_experiment_plans_caches_and_evaluates_the_untrained_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = ExperimentSpec.model_validate(
        {
            "name": "pretraining-helps",
            "base": tiny_base(2),
            "axes": {"pretrain": {"yes": {}, "none": {"trainer.max_steps": 0}}},
            "seeds": [0],
            "tasks": [{"name": "qa_probe", "max_iter": 20}],
        }
    )
    plan = plan_experiment(spec)
    runs = {run.variant: run for run in plan.runs}
    assert runs["yes"].key != runs["none"].key
    executor_module.execute(plan, log=lambda _: None)
    assert [checkpoint_step(p) for p in list_checkpoints(runs["none"].run_dir)] == [0]
    rows = {
        e.run.variant: pq.read_table(e.rows_path).to_pylist() for e in plan_experiment(spec).evals
    }
    assert [r["example_id"] for r in rows["yes"]] == [r["example_id"] for r in rows["none"]]
    assert [r["p_correct"] for r in rows["yes"]] != [r["p_correct"] for r in rows["none"]]
    again = plan_experiment(spec)
    assert all(run.status() == "done" for run in again.runs)
    assert all(e.status() == "done" for e in again.evals)
    assert executor_module.pending_jobs(again) == []
