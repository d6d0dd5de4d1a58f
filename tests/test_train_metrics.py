"""Training metrics: the JSONL log, the per-interval meter and the progress bar."""

from __future__ import annotations

from transferlab.train.metrics import IntervalMeter, MetricsLog, read_metrics
from transferlab.train.progress import TrainProgress, progress_enabled


def test_metrics_rows_append_as_json_lines_and_truncate_after_a_step(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (1, 2, 3, 4):
        log.append({"step": step, "train_loss": step / 10})
    assert [r["step"] for r in read_metrics(log.path)] == [1, 2, 3, 4]
    log.truncate_after(2)
    assert read_metrics(log.path) == [
        {"step": 1, "train_loss": 0.1},
        {"step": 2, "train_loss": 0.2},
    ]
    log.append({"step": 3, "train_loss": 0.5})
    assert [r["train_loss"] for r in read_metrics(log.path)] == [0.1, 0.2, 0.5]
    log.reset()
    assert read_metrics(log.path) == []


def test_disabled_log_writes_nothing(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl", enabled=False)
    log.reset()
    log.append({"step": 1})
    log.truncate_after(0)
    assert not log.path.exists()
    assert read_metrics(log.path) == []


def test_interval_meter_averages_since_reset_and_restores_its_sum():
    meter = IntervalMeter()
    assert meter.mean_loss() is None
    meter.add(1.0, tokens=10)
    meter.add(2.0, tokens=10)
    assert meter.mean_loss() == 1.5
    assert meter.tokens_per_s() > 0
    saved = meter.state_dict()
    restored = IntervalMeter()
    restored.load_state_dict(saved)
    restored.add(4.0, tokens=10)
    assert restored.mean_loss() == 7.0 / 3
    meter.reset()
    assert meter.mean_loss() is None


def test_progress_bar_shows_steps_loss_throughput_and_eta(capsys):
    with TrainProgress(total_steps=8, start_step=2, enabled=True) as bar:
        bar.update(8, loss=1.23456, tokens_per_s=12345.6)
    err = capsys.readouterr().err
    assert "8/8" in err and "loss 1.2346" in err and "12,346 tok/s" in err and "eta" in err


def test_progress_bar_is_silent_when_disabled_or_not_a_terminal(capsys):
    with TrainProgress(total_steps=8, start_step=0, enabled=False) as bar:
        bar.update(1, loss=1.0, tokens_per_s=1.0)
    assert capsys.readouterr() == ("", "")
    assert not progress_enabled(requested=True, is_main=True)  # captured stderr is no TTY
