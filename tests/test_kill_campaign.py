"""A kill -9 campaign: an experiment (two variants, two stages, two tasks) is killed with SIGKILL
at seeded random moments, restarted each time, and finally run to the end; its result tables
equal those of an uninterrupted run in a cache of its own (wall-clock columns aside)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tiny_experiment import tiny_base

pytestmark = pytest.mark.slow
KILLS = 12
SEED = 20240909
WALL_CLOCK = {"train_seconds", "elapsed_s", "seconds"}

SPEC = {
    "name": "kills",
    "base": tiny_base(40, eval_interval=10, checkpoint_interval=5),
    "stages": [
        {"name": "pretrain"},
        {"name": "more", "overrides": {"trainer.max_steps": 20, "optimizer.lr": 1e-3}},
    ],
    "axes": {"lr": {"low": {"optimizer.lr": 1e-4}, "high": {"optimizer.lr": 1e-2}}},
    "seeds": [0],
    "tasks": [{"name": "qa_probe", "max_iter": 20}, {"name": "qa_score", "n_choices": 4}],
    "compare": {"baseline": "low"},
}


def run_cli(exp: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "TRANSFERLAB_CACHE": str(cache)}
    args = [sys.executable, "-m", "transferlab.cli", "run", str(exp), "--out", str(out)]
    log = (out.parent / f"{out.name}.log").open("ab")  # a file: a full pipe would block the run
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)


def log_tail(out: Path) -> str:
    return (out.parent / f"{out.name}.log").read_text(errors="replace")[-2000:]


def tables(out: Path) -> dict[str, list[dict]]:
    found = {}
    for path in sorted((out / "results").glob("*.parquet")):
        rows = pq.read_table(path).to_pylist()
        found[path.name] = [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows]
    return found


def test_results_survive_kill_minus_nine(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(SPEC))
    start = time.perf_counter()
    clean = run_cli(exp, tmp_path / "clean", tmp_path / "cache-clean")
    assert clean.wait(timeout=600) == 0, log_tail(tmp_path / "clean")
    total = time.perf_counter() - start
    rng = random.Random(SEED)
    survived = 0
    for _ in range(KILLS):
        proc = run_cli(exp, tmp_path / "killed", tmp_path / "cache-killed")
        # each restart resumes, so kills a fraction of the run apart sweep the whole of it:
        # start-up, data, training, checkpoints, evaluations, results
        time.sleep(rng.uniform(0.5, 0.5 + 2 * total / KILLS))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            survived += 1
        proc.wait(timeout=60)
    final = run_cli(exp, tmp_path / "killed", tmp_path / "cache-killed")
    assert final.wait(timeout=600) == 0, log_tail(tmp_path / "killed")
    assert survived >= 10, f"only {survived} kills landed before the run finished"
    clean_tables, killed_tables = tables(tmp_path / "clean"), tables(tmp_path / "killed")
    assert set(clean_tables) >= {"examples.parquet", "runs.parquet"}
    assert killed_tables == clean_tables
