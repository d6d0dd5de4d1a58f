"""Stage initialization: a run that starts from another run's checkpoint (weights, optionally
optimizer moments), its own schedule from step 0, its key from the parent's key and step, exact
resume of a child, and one-line errors for a parent that cannot be used."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from transferlab.config import ConfigError, InitConfig, TokenizerConfig, validate
from transferlab.data import PackedLoader, TextTokenizer, data_key, prepare_data, train_tokenizer
from transferlab.data.prepare import UnknownTokensWarning
from transferlab.models import build_model
from transferlab.train import read_metrics, train
from transferlab.train.checkpoint import (
    checkpoint_dir,
    load_run,
    load_train_state,
    read_run_config,
)
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Engine
from transferlab.train.init import check_init, data_config
from transferlab.train.rng import seeded_generator
from transferlab.train.run_dir import config_key
from transferlab.train.trainer import Pretraining
from transferlab.worlds import BiosConfig


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
        (
            ["tokenizer.kind=bpe"],
            r"^tokenizer.kind: 'bpe' here but the parent .* trained its tokenizer with 'word'; a "
            "child reads its parent's tokenizer",
        ),
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


# Continued pretraining on other data: another bios world (other people, other seed).
OTHER_WORLD = ("world.num_people=30", "world.seed=5")


def test_a_child_on_other_data_reads_it_with_its_parents_tokenizer(tiny_config, parent):
    child = _child(tiny_config, parent, *OTHER_WORLD)
    with pytest.warns(UnknownTokensWarning):  # new people's names are new words
        data = prepare_data(data_config(child))
    tokenizer = TextTokenizer.from_file(parent / "tokenizer.json")
    assert data.tokenizer_path.read_bytes() == (parent / "tokenizer.json").read_bytes()
    docs = BiosConfig(num_people=30, seed=5).build().documents()
    expected = [[1, *ids, 2] for ids in tokenizer.encode_batch(docs)]  # the whole corpus trains
    folder = data.train_folder()
    assert [folder.document(i).tolist() for i in range(folder.n_docs)] == expected
    assert data.key != json.loads((parent / "run_info.json").read_text())["data_key"]
    info = json.loads((data.root / "info.json").read_text())
    unknown = sum(ids.count(tokenizer.token_to_id("<unk>")) for ids in expected)
    assert info["train_unknown_tokens"] == unknown > 0
    # Keyed by the tokenizer's bytes and the corpus, not the parent's path.
    moved = shutil.copytree(parent, parent.parent.parent / "elsewhere" / "parent")
    assert data_key(data_config(_child(tiny_config, moved, *OTHER_WORLD))) == data.key


def test_a_child_on_its_parents_data_keeps_the_parents_data_stage(tiny_config, parent):
    child = _child(tiny_config, parent, "optimizer.lr=0.01")
    assert data_config(child) == child
    assert data_key(child) == json.loads((parent / "run_info.json").read_text())["data_key"]
    fresh = tiny_config("world.num_people=30")
    assert data_config(fresh) is fresh  # a run without init: its data, as before


def test_continued_pretraining_starts_from_the_parents_final_weights_and_rewarms(
    tiny_config, parent
):
    child = _child(tiny_config, parent, *OTHER_WORLD, "schedule.warmup_steps=3")
    with pytest.warns(UnknownTokensWarning, match=r"are <unk>.*first stage's\) with tokenizer"):
        result = train(child)
        data = prepare_data(data_config(child))
    assert (result.run_dir / "tokenizer.json").read_bytes() == (
        parent / "tokenizer.json"
    ).read_bytes()
    rows = read_metrics(result.run_dir / "metrics.jsonl")
    # The loss of the child's first step is that of the parent's final weights on the
    # child's first batch (a random initialization would give another).
    batch = child.objective.build(data.special, data.vocab_size).make_batch(
        PackedLoader(data.train_folder(), 32, 8, seed=child.seed).global_batch(),
        seeded_generator(child.seed, "train", 0),
    )
    final = load_run(parent).model
    assert rows[0]["train_loss"] == pytest.approx(_loss(child, data, final, batch), rel=1e-5)
    torch.manual_seed(child.seed)
    scratch = build_model(read_run_config(result.run_dir).model)
    assert abs(_loss(child, data, scratch, batch) - rows[0]["train_loss"]) > 0.1
    fn = child.schedule.build(child.trainer.max_steps)
    assert [r["lr"] for r in rows] == [child.optimizer.lr * fn(s) for s in range(8)]
    assert rows[0]["lr"] == child.optimizer.lr / 3  # warmup again, from the child's step 0


def _loss(cfg, data, model, batch) -> float:
    objective = cfg.objective.build(data.special, data.vocab_size)
    with torch.no_grad():
        out = objective.loss(model.eval(), batch)
    return float(out.sum) / out.n_targets


def test_a_child_given_another_tokenizer_file_fails_before_any_data_work(tiny_config, parent):
    other = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), ["some other text"])
    path = parent.parent / "other.json"
    other.save(path)
    child = _child(tiny_config, parent, *OTHER_WORLD, f"data.tokenizer_file={path}")
    with pytest.raises(ConfigError, match=r"^data.tokenizer_file: .*other.json is not the tok"):
        data_config(child)
    same = _child(
        tiny_config, parent, *OTHER_WORLD, f"data.tokenizer_file={parent / 'tokenizer.json'}"
    )
    assert data_key(data_config(same)) == data_key(
        data_config(_child(tiny_config, parent, *OTHER_WORLD))
    )
