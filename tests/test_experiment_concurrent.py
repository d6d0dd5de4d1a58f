"""Two `transferlab run` processes on one cache at once: each stage is trained and evaluated
once (the other process waits for it), and both finish with the same result tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
import yaml

from tiny_experiment import tiny_base
from transferlab.experiment import ExperimentSpec, load_results, plan_experiment
from transferlab.experiment import executor as executor_module

SPEC = {
    "name": "both",
    "base": tiny_base(6, eval_interval=3, checkpoint_interval=2, log_interval=1),
    "axes": {"lr": {"low": {"optimizer.lr": 1e-4}, "high": {"optimizer.lr": 1e-2}}},
    "seeds": [0],
    "tasks": [{"name": "qa_probe", "max_iter": 20}, {"name": "qa_score", "n_choices": 4}],
    "compare": {"baseline": "low"},
}


def test_two_executors_at_once_train_and_evaluate_each_stage_once(tmp_path, monkeypatch):
    """Two executors of one plan at once (threads here: each takes its own lock handles, as two
    processes do): each run is trained once and each evaluation written once."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    trained, written = [], []
    real_train, real_write = executor_module.train, executor_module._write_eval

    def train(cfg, resume=False, **options):
        trained.append(cfg.name)
        return real_train(cfg, resume=resume, **options)

    def write_eval(planned, rows, notes):
        written.append(planned.key)
        real_write(planned, rows, notes)

    monkeypatch.setattr(executor_module, "train", train)
    monkeypatch.setattr(executor_module, "_write_eval", write_eval)
    plan = plan_experiment(ExperimentSpec.model_validate(SPEC))
    both = threading.Barrier(2)

    def execute():
        both.wait()
        executor_module.execute(plan, log=lambda _: None)

    threads = [threading.Thread(target=execute) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(trained) == sorted({run.key for run in plan.runs})
    assert sorted(written) == sorted({e.key for e in plan.evals})


@pytest.mark.slow
def test_two_processes_on_one_cache_train_each_stage_once(tmp_path):
    spec = tmp_path / "both.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    env = {
        **os.environ,
        "TRANSFERLAB_CACHE": str(tmp_path / "store"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    # Each process is the CLI with its executor's train() counted in one shared file.
    driver = (
        "import sys\n"
        "from transferlab.experiment import executor\n"
        "real = executor.train\n"
        "def train(cfg, resume=False, **options):\n"
        f"    with open({str(tmp_path / 'trained.log')!r}, 'a') as log:\n"
        "        log.write(cfg.name + '\\n')\n"
        "    return real(cfg, resume=resume, **options)\n"
        "executor.train = train\n"
        "from transferlab.cli import main\n"
        "sys.argv = ['transferlab', *sys.argv[1:]]\n"
        "main()\n"
    )
    command = [sys.executable, "-c", driver, "run", str(spec), "--out"]
    procs = [
        subprocess.Popen(
            [*command, str(tmp_path / name)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs

    run_dirs = sorted(p for p in (tmp_path / "store" / "runs").iterdir() if p.name[0] != ".")
    assert len(run_dirs) == 2
    trained = (tmp_path / "trained.log").read_text().split()
    assert sorted(trained) == [run_dir.name for run_dir in run_dirs]  # each run trained once
    for run_dir in run_dirs:
        rows = (run_dir / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(row)["step"] for row in rows] == list(range(1, 7))
    tables = [load_results(tmp_path / name).examples for name in ("a", "b")]
    key = [(c, "ascending") for c in ("run_id", "task", "example_id")]
    assert tables[0].sort_by(key).equals(tables[1].sort_by(key))
    assert tables[0].num_rows == 2 * 2 * 8 * 6  # runs x tasks x test people x attributes
