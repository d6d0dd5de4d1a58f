"""Resuming: N steps + resume + N steps equals 2N uninterrupted steps bit for bit on CPU, after
a planned stop, a signal, or a crash; a resumed config may differ only in harmless fields."""

from __future__ import annotations

import os
import shutil
import signal

import pytest
import torch

from transferlab.config import ConfigError
from transferlab.train import load_run, read_metrics, train
from transferlab.train.checkpoint import (
    checkpoint_dir,
    checkpoint_step,
    list_checkpoints,
    load_train_state,
)
from transferlab.train.metrics import MetricsLog

TIMING = ("tokens_per_s", "elapsed_s")  # wall-clock fields, the only ones allowed to differ


def _rows(run_dir) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in TIMING}
        for r in read_metrics(run_dir / "metrics.jsonl")
    ]


def _assert_same_run(a, b) -> None:
    """Same logged losses, same weights, same optimizer state (torch.equal, not allclose)."""
    assert _rows(a.run_dir) == _rows(b.run_dir)
    assert (a.steps, a.train_loss, a.val_loss) == (b.steps, b.train_loss, b.val_loss)
    model_a, model_b = load_run(a.run_dir).model, load_run(b.run_dir).model
    for (name, x), (_, y) in zip(
        model_a.state_dict().items(), model_b.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
    state_a, state_b = load_train_state(a.checkpoint), load_train_state(b.checkpoint)
    assert state_a["loader"] == state_b["loader"]
    for pa, pb in zip(
        state_a["optimizer"]["state"].values(), state_b["optimizer"]["state"].values(), strict=True
    ):
        for key in pa:
            assert torch.equal(pa[key], pb[key]), key


@pytest.mark.parametrize("objective", ["clm", "mlm", "ul2"])
def test_stop_and_resume_is_bitwise_identical_to_an_uninterrupted_run(tiny_config, objective):
    """Stopping at step 3 falls between log rows (log_interval=2) and checkpoints (every 4)."""
    settings = (f"objective={objective}", "trainer.log_interval=2")
    full = train(tiny_config("name=full", *settings))
    first = train(tiny_config("name=split", *settings), stop_after=3)
    assert first.interrupted and first.steps == 3
    assert checkpoint_step(first.checkpoint) == 3
    resumed = train(tiny_config("name=split", *settings), resume=True)
    assert not resumed.interrupted and resumed.steps == 8
    _assert_same_run(resumed, full)


def test_resume_after_a_crash_drops_metric_rows_logged_after_the_checkpoint(tiny_config):
    full = train(tiny_config("name=full"))
    crashed = train(tiny_config("name=crashed"))
    # Pretend the process died after step 8's rows were logged but before its checkpoint.
    shutil.rmtree(checkpoint_dir(crashed.run_dir, 8))
    resumed = train(tiny_config("name=crashed"), resume=True)
    assert [r["step"] for r in read_metrics(resumed.run_dir / "metrics.jsonl")] == list(range(1, 9))
    _assert_same_run(resumed, full)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_stops_cleanly_and_resumes_exactly(tiny_config, monkeypatch, sig):
    full = train(tiny_config("name=full"))
    append = MetricsLog.append

    def append_then_signal(self, row):
        append(self, row)
        if row["step"] == 2:
            os.kill(os.getpid(), sig)  # arrives while step 2 is being logged

    monkeypatch.setattr(MetricsLog, "append", append_then_signal)
    before = signal.getsignal(sig)
    stopped = train(tiny_config("name=signalled"))
    assert signal.getsignal(sig) is before  # the trainer's handler is gone again
    assert stopped.interrupted and stopped.steps == 3  # the flag is seen after the next step
    assert [checkpoint_step(p) for p in list_checkpoints(stopped.run_dir)] == [3]
    monkeypatch.setattr(MetricsLog, "append", append)
    resumed = train(tiny_config("name=signalled"), resume=True)
    _assert_same_run(resumed, full)


def test_resume_refuses_a_config_that_changes_the_result(tiny_config):
    train(tiny_config(), stop_after=2)
    with pytest.raises(
        ConfigError,
        match=r"cannot resume .*: optimizer.lr is 0.01 but the run was started with 0.003",
    ):
        train(tiny_config("optimizer.lr=0.01"), resume=True)
    with pytest.raises(
        ConfigError, match=r"trainer.batch_size is 4 but the run was started with 8"
    ):
        train(tiny_config("trainer.batch_size=4"), resume=True)


def test_resume_may_extend_max_steps_and_change_logging(tiny_config):
    train(tiny_config())
    extended = tiny_config("trainer.max_steps=12", "trainer.log_interval=3")
    longer = train(extended, resume=True, allow_changes=True)
    assert longer.steps == 12
    steps = [r["step"] for r in read_metrics(longer.run_dir / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8, 9, 12]


def test_resume_without_a_checkpoint_starts_from_scratch(tiny_config):
    result = train(tiny_config("trainer.max_steps=4"), resume=True)
    assert result.steps == 4 and not result.interrupted
