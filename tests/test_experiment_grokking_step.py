"""`grokking_step`: the first evaluation step a downstream curve reaches its threshold, censored
at the budget, and the gap to another curve's step."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from modular_setup import modular_run
from transferlab.artifacts import write_parquet_atomic
from transferlab.config import MEASURES, validate
from transferlab.evaluate.downstream import downstream_path
from transferlab.experiment.measures import RunRecord, RunValue


def _write_curve(run_dir, task: str, accuracy: dict[int, float], n: int = 10) -> None:
    """Rows of ``n`` examples per step whose mean ``correct`` is ``accuracy[step]``."""
    for step, acc in accuracy.items():
        hits = round(acc * n)
        rows = [
            {"task": task, "example_id": str(i), "correct": float(i < hits), "step": step}
            for i in range(n)
        ]
        path = downstream_path(run_dir, step, task)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(pa.Table.from_pylist(rows), path)


@pytest.fixture
def record(tmp_path):
    """A run of max_steps 500 whose train curve reaches 0.9 at 100 and test curve at 400."""
    _write_curve(tmp_path, "train_acc", {100: 0.9, 200: 1.0, 300: 1.0, 400: 1.0, 500: 1.0})
    _write_curve(tmp_path, "test_acc", {100: 0.1, 200: 0.5, 300: 0.8, 400: 0.9, 500: 1.0})
    _write_curve(tmp_path, "never", {100: 0.1, 200: 0.2, 300: 0.8, 400: 0.8, 500: 0.8})
    summary = {"variant": "wd1", "seed": 0, "run_id": "r"}
    return RunRecord(summary, [], modular_run(tmp_path / "runs", steps=500), {}, tmp_path)


def _measure(**fields):
    return validate(MEASURES.get("grokking_step"), {"name": "grokking_step", **fields})


def test_the_step_is_the_first_evaluation_at_or_above_the_threshold(record) -> None:
    assert _measure(task="test_acc").compute(record) == RunValue(400.0)
    assert _measure(task="test_acc", threshold=0.5).compute(record) == RunValue(200.0)
    assert _measure(task="train_acc").compute(record) == RunValue(100.0)


def test_a_curve_that_never_reaches_it_is_censored_at_the_budget(record) -> None:
    assert _measure(task="never").compute(record) == RunValue(500.0, censored=True)


def test_since_gives_the_gap_and_censors_it_with_the_step(record) -> None:
    assert _measure(task="test_acc", since="train_acc").compute(record) == RunValue(300.0)
    gap = _measure(task="never", since="train_acc").compute(record)
    assert gap == RunValue(400.0, censored=True)  # at least 500 - 100
    no_memorization = _measure(task="test_acc", since="never").compute(record)
    assert math.isnan(no_memorization.value) and not no_memorization.censored


def test_it_is_lower_is_better_and_names_a_missing_curve(record) -> None:
    assert _measure(task="test_acc").higher_is_better is False
    with pytest.raises(ValueError, match=r"no downstream curve 'test' \(it has \['never'"):
        _measure(task="test").compute(record)
    with pytest.raises(ValueError, match="has no metric 'p_correct'"):
        _measure(task="test_acc", metric="p_correct").compute(record)
