"""Shared test setup: an isolated artifact cache, one torch thread, and a tiny run config."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from transferlab.config import RunConfig, apply_overrides, validate

# A run small enough to train a step in milliseconds: 40 people, a 1-layer 32-wide model.
TINY_RUN = {
    "name": "tiny",
    "seed": 0,
    "world": {"name": "bios", "num_people": 40},
    "data": {"seq_len": 32, "val_fraction": 0.1},
    "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
    "optimizer": {"name": "adamw", "lr": 3e-3},
    "schedule": {"name": "cosine", "warmup_steps": 2},
    "trainer": {
        "max_steps": 8,
        "batch_size": 8,
        "eval_interval": 4,
        "eval_batches": 2,
        "log_interval": 1,
        "checkpoint_interval": 4,
        "progress": False,
    },
}


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Artifacts (prepared data, ...) go to a per-session directory, shared by the tests so a
    world is tokenized once; a test may still point TRANSFERLAB_CACHE elsewhere itself."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and several OpenMP threads on a busy 2-core
    machine can slow them down a hundredfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config(tmp_path: Path) -> Callable[..., RunConfig]:
    """``tiny_config("trainer.max_steps=4", ...)``: the tiny run writing under ``tmp_path/runs``,
    with dotted overrides as on the command line."""

    def make(*overrides: str) -> RunConfig:
        data = apply_overrides(TINY_RUN, [f"trainer.out_dir={tmp_path / 'runs'}", *overrides])
        return validate(RunConfig, data)

    return make


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (a writer killed earlier)."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of another process that is alive for the whole test (a concurrent writer)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child.pid
    child.kill()
    child.wait()


def temp_of(final: Path, pid: int) -> Path:
    """The temporary name a writer with ``pid`` on this machine gives ``final`` while writing."""
    from transferlab.artifacts import temp_path

    return temp_path(final).with_name(temp_path(final).name.replace(f"-{os.getpid()}-", f"-{pid}-"))
