"""Checkpoints: atomic writes, only complete ones are found, the last K are kept, and the
training state loads with weights_only=True."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from conftest import temp_of
from transferlab.config import ModelConfig
from transferlab.models import build_model
from transferlab.train.checkpoint import (
    WEIGHTS_FILE,
    checkpoint_dir,
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    load_train_state,
    load_weights,
    read_meta,
    save_checkpoint,
)
from transferlab.train.rng import capture_rng_state, derive_seed, restore_rng_state

MODEL = ModelConfig(d_model=16, n_layers=1, n_heads=2, vocab_size=20)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(MODEL)


def _save(run_dir, step: int, keep: int = 10, model=None, state=None) -> None:
    model = model or _model(step)
    save_checkpoint(run_dir, step, model, state or {"step": step}, {"tokens": step * 5}, keep)


def test_checkpoint_holds_weights_state_meta_and_complete_marker(tmp_path):
    path = save_checkpoint(tmp_path, 7, _model(0), {"step": 7}, {"tokens": 35}, keep=2)
    assert path == tmp_path / "checkpoints" / "step_00000007"
    assert sorted(p.name for p in path.iterdir()) == [
        "COMPLETE",
        "meta.json",
        "model.safetensors",
        "train_state.pt",
    ]
    assert read_meta(path) == {"step": 7, "tokens": 35}
    assert checkpoint_step(path) == 7


def test_weights_round_trip_exactly_and_keep_the_embedding_tied(tmp_path):
    source = _model(1)
    path = save_checkpoint(tmp_path, 1, source, {}, {}, keep=1)
    target = _model(2)
    load_weights(path, target)
    for (name, a), (_, b) in zip(
        source.state_dict().items(), target.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    # The output head still is the embedding matrix (one tensor), not a loaded copy.
    assert target.output_weight is target.embed.weight


def test_latest_ignores_directories_without_complete_marker_and_temp_dirs(tmp_path):
    _save(tmp_path, 4)
    _save(tmp_path, 8)
    half_written = checkpoint_dir(tmp_path, 12)
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "checkpoints" / ".step_00000016.tmp-1234abcd").mkdir()
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 8)
    assert [checkpoint_step(p) for p in list_checkpoints(tmp_path)] == [4, 8]


def test_no_checkpoint_when_the_run_dir_is_empty_or_missing(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    (tmp_path / "checkpoints").mkdir()
    assert latest_checkpoint(tmp_path) is None


def test_a_failed_write_leaves_no_checkpoint_behind(tmp_path):
    class Broken(torch.nn.Module):
        def state_dict(self, *args, **kwargs):
            raise RuntimeError("disk full")

    _save(tmp_path, 4)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(tmp_path, 8, Broken(), {}, {}, keep=2)
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 4)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000004"]


def test_only_the_last_k_complete_checkpoints_are_kept_and_dead_writers_leftovers_removed(
    tmp_path, dead_pid
):
    leftover = temp_of(checkpoint_dir(tmp_path, 3), dead_pid)
    leftover.mkdir(parents=True)
    for step in (2, 4, 6, 8):
        _save(tmp_path, step, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000006", "step_00000008"]


def test_a_live_writers_folder_is_never_removed(tmp_path, live_pid):
    """Another process writing a checkpoint of the same run (its temporary folder) survives
    this process's saves and pruning; before pids were in the names, pruning removed it."""
    theirs = temp_of(checkpoint_dir(tmp_path, 3), live_pid)
    theirs.mkdir(parents=True)
    (theirs / WEIGHTS_FILE).write_bytes(b"being written")
    for step in (2, 4):
        _save(tmp_path, step, keep=1)
    assert (theirs / WEIGHTS_FILE).read_bytes() == b"being written"
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 4)


def test_train_state_loads_with_weights_only(tmp_path):
    model = _model(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(2, 4, dtype=torch.long)).sum().backward()
    optimizer.step()
    state = {
        "step": 3,
        "optimizer": optimizer.state_dict(),
        "loader": {"epoch": 1, "position": 16},
        "rng": capture_rng_state(),
    }
    path = save_checkpoint(tmp_path, 3, model, state, {}, keep=1)
    loaded = load_train_state(path)  # weights_only=True inside; would raise on any pickled object
    assert loaded["step"] == 3 and loaded["loader"] == {"epoch": 1, "position": 16}
    restored = torch.optim.AdamW(model.parameters(), lr=1e-3)
    restored.load_state_dict(loaded["optimizer"])
    for p in model.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(restored.state[p][key], optimizer.state[p][key])


def test_rng_state_round_trip_repeats_torch_numpy_and_python_draws(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    path = tmp_path / "rng.pt"
    torch.save(capture_rng_state(), path)
    first = (torch.rand(4), np.random.rand(4).tolist(), [random.random() for _ in range(4)])
    restore_rng_state(torch.load(path, weights_only=True))
    second = (torch.rand(4), np.random.rand(4).tolist(), [random.random() for _ in range(4)])
    assert torch.equal(first[0], second[0])
    assert first[1:] == second[1:]


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "train", 5, 0) == derive_seed(0, "train", 5, 0)
    seeds = {
        derive_seed(seed, "train", step, rank)
        for seed in range(3)
        for step in range(50)
        for rank in range(4)
    }
    assert len(seeds) == 3 * 50 * 4
    assert all(0 <= s < 2**63 for s in seeds)
