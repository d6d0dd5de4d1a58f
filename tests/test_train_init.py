"""Stage initialization: a run that starts from another run's checkpoint (weights, optionally
optimizer moments), its own schedule from step 0, its key from the parent's key and step, exact
resume of a child, and one-line errors for a parent that cannot be used."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from transferlab.config import ConfigError, InitConfig, validate
from transferlab.train import read_metrics, train
from transferlab.train.checkpoint import checkpoint_dir, load_train_state
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Engine
from transferlab.train.init import check_init
from transferlab.train.run_dir import config_key
from transferlab.train.trainer import Pretraining


@pytest.fixture
def parent(tiny_config):
    """The tiny run trained for 8 steps with checkpoints at steps 4 and 8."""
    return train(tiny_config("name=parent")).run_dir


def _child(tiny_config, parent, *overrides):
    return tiny_config("name=child", f"init.from_run={parent}", *overrides)


def _trainer(cfg, resume=False) -> Engine:
    return Pretraining(cfg, DistContext(0, 1, 0, torch.device("cpu")), resume).engine


def test_a_child_starts_from_the_parent_weights_at_its_own_step_zero(tiny_config, parent):
    child = _child(tiny_config, parent, "init.step=4", "schedule.warmup_steps=3")
    trainer = _trainer(child)
    saved = load_file(str(checkpoint_dir(parent, 4) / "model.safetensors"))
    assert trainer.step == 0
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert trainer.optimizer.state_dict()["state"] == {}  # init.optimizer defaults to false

    rows = read_metrics(train(child).run_dir / "metrics.jsonl")
    # The child's schedule re-warms from its own step 0 with its own warmup.
    fn = child.schedule.build(child.trainer.max_steps)
    assert [r["lr"] for r in rows] == [child.optimizer.lr * fn(s) for s in range(8)]
    assert rows[0]["lr"] == child.optimizer.lr / 3


def test_init_optimizer_takes_the_moments_and_keeps_this_runs_hyperparameters(tiny_config, parent):
    child = _child(tiny_config, parent, "init.optimizer=true", "optimizer.lr=0.01")
    optimizer = _trainer(child).optimizer
    saved = load_train_state(checkpoint_dir(parent, 8))["optimizer"]
    state = optimizer.state_dict()
    assert state["state"].keys() == saved["state"].keys()
    for index, moments in saved["state"].items():
        assert torch.equal(state["state"][index]["exp_avg"], moments["exp_avg"])
        assert torch.equal(state["state"][index]["exp_avg_sq"], moments["exp_avg_sq"])
    assert {g["initial_lr"] for g in state["param_groups"]} == {0.01}
    assert {g["initial_lr"] for g in saved["param_groups"]} == {3e-3}


def test_a_resumed_child_continues_its_own_checkpoint_exactly(tiny_config, parent):
    full = train(_child(tiny_config, parent, "name=full"))
    first = train(_child(tiny_config, parent, "name=split"), stop_after=3)
    assert first.interrupted
    resumed = train(_child(tiny_config, parent, "name=split"), resume=True)
    assert resumed.steps == 8
    a = load_file(str(full.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_metrics(full.run_dir / "metrics.jsonl") == [
        {**r, "elapsed_s": f["elapsed_s"], "tokens_per_s": f["tokens_per_s"]}
        for r, f in zip(
            read_metrics(resumed.run_dir / "metrics.jsonl"),
            read_metrics(full.run_dir / "metrics.jsonl"),
            strict=True,
        )
    ]


def test_a_child_is_keyed_by_its_parents_key_and_step_not_its_path(tiny_config, parent, tmp_path):
    moved = shutil.copytree(parent, tmp_path / "elsewhere" / "parent")
    here = _child(tiny_config, parent)
    there = _child(tiny_config, moved)
    assert config_key(here) == config_key(there)
    assert config_key(here) == config_key(_child(tiny_config, parent, "init.step=8"))
    assert config_key(here) != config_key(_child(tiny_config, parent, "init.step=4"))
    assert config_key(here) != config_key(_child(tiny_config, parent, "init.optimizer=true"))
    assert config_key(here) != config_key(here, parent_key="another-parent")
    # A different parent config gives a different key even at the same path.
    other = train(tiny_config("name=parent2", "optimizer.lr=0.01")).run_dir
    assert config_key(_child(tiny_config, other)) != config_key(here)
    fresh = tiny_config("name=child")
    assert config_key(fresh) != config_key(here)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["init.step=5"],
            r"init.step: .* has no complete checkpoint of step 5; available steps: \[4, 8\]",
        ),
        (["model.d_model=64"], "model.d_model is 64 here but 32 in the parent"),
        (["world.num_people=20"], "another tokenizer than this run's data builds"),
    ],
)
def test_a_parent_that_cannot_be_used_fails_in_one_line(tiny_config, parent, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        train(_child(tiny_config, parent, *overrides))
    assert "\n" not in str(info.value)


def test_a_child_may_not_write_into_its_parents_directory(tiny_config, parent):
    with pytest.raises(ConfigError, match="is this run's own directory; a child writes its own"):
        check_init(_child(tiny_config, parent, "name=parent"))


def test_a_missing_parent_or_a_negative_step_fails_in_one_line(tiny_config, tmp_path):
    cfg = tiny_config(f"init.from_run={tmp_path / 'nope'}")
    with pytest.raises(ConfigError, match=r"init.from_run: .*nope is not a run directory"):
        config_key(cfg)
    with pytest.raises(ConfigError, match=r"^step: got -1; expected greater than or equal to 0"):
        validate(InitConfig, {"from_run": "x", "step": -1})
