"""The Ray executor runs each pending job as a Ray task on a local Ray cluster and computes what the
local executor computes (needs ray; slow: starting Ray takes ~10 s, training 8 runs ~1 min)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tiny_experiment import tiny_base
from transferlab.experiment import ExperimentSpec, plan_experiment
from transferlab.experiment.executor import execute, ray_task_resources
from transferlab.experiment.planner import Plan

ray = pytest.importorskip("ray")

SEEDS = [0, 1, 2, 3]


def _spec() -> ExperimentSpec:
    """2 variants x 4 seeds of the tiny run, 3 steps, scored on the QA questions."""
    return ExperimentSpec.model_validate(
        {
            "name": "tiny-ray",
            "base": tiny_base(3),
            "axes": {"lr": {"low": {"optimizer.lr": 1e-4}, "high": {"optimizer.lr": 1e-2}}},
            "seeds": SEEDS,
            "tasks": [{"name": "qa_score", "n_choices": 4}],
        }
    )


def _descendants_alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if psutil.pid_exists(pid)}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray cluster of 2 CPUs, started while TRANSFERLAB_CACHE points to a decoy folder:
    its workers inherit that environment, as workers of a `ray start` node inherit the node's,
    so a run that found its cache from its own environment would prepare its data there. Torn
    down afterwards, with every process it started."""
    decoy = tmp_path_factory.mktemp("decoy-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFERLAB_CACHE", str(decoy))
        # "local": a new cluster even where a `ray start` one runs on this machine. Ray turns
        # its token authentication on (writing ~/.ray/auth_token if missing), as for any user.
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    started = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        yield decoy
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 30
        while _descendants_alive(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _descendants_alive(started), "ray.shutdown() left processes behind"


def _final_losses(plan: Plan) -> dict[str, dict]:
    """Each run's last logged losses and gradient norm, by run key."""
    out = {}
    for run in plan.runs:
        last = json.loads((run.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        out[run.key] = {k: last[k] for k in ("step", "train_loss", "val_loss", "grad_norm")}
    return out


def _contents(plan: Plan) -> dict[str, object]:
    """What the plan's stages hold, by stage key: each run's files (paths relative to its
    directory) and final weights, each evaluation's per-example rows."""
    out: dict[str, object] = {}
    for run in plan.runs:
        files = sorted(str(p.relative_to(run.run_dir)) for p in run.run_dir.rglob("*"))
        weights = run.run_dir / "checkpoints" / "step_00000003" / "model.safetensors"
        out[run.key] = (files, weights.read_bytes())
    for planned in plan.evals:
        out[planned.key] = pq.read_table(planned.rows_path).to_pylist()
    return out


@pytest.mark.slow
def test_ray_executor_equals_the_local_executor_and_reuses_every_run(
    ray_cluster, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "local"))
    local = plan_experiment(_spec())
    execute(local, executor="local", log=lambda _: None)

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "ray"))
    on_ray = plan_experiment(_spec())
    lines: list[str] = []
    execute(on_ray, executor="ray", log=lines.append)

    assert len(on_ray.runs) == 8 and len(on_ray.evals) == 8
    assert len(lines) == 8 and all(line.endswith("on ray") for line in lines)
    assert all(r.status() == "done" for r in on_ray.runs)
    assert all(e.status() == "done" for e in on_ray.evals)
    assert {run.run_dir.parent for run in on_ray.runs} == {tmp_path / "ray" / "runs"}
    # The workers prepared data and tokenizers in the driver's cache, none in their own.
    assert (tmp_path / "ray" / "data").is_dir()
    assert list(Path(ray_cluster).iterdir()) == []

    # The same stages, keys and files, bit-identical weights, losses and per-example rows.
    assert [r.key for r in on_ray.runs] == [r.key for r in local.runs]
    assert _final_losses(on_ray) == _final_losses(local)
    assert _contents(on_ray) == _contents(local)

    # A second invocation finds every stage finished and rewrites nothing.
    store = tmp_path / "ray"
    written = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    again: list[str] = []
    execute(plan_experiment(_spec()), executor="ray", log=again.append)
    assert again == ["every stage is finished; nothing to run"]
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == written


def test_a_ray_task_asks_for_one_cpu_and_a_gpu_where_the_cluster_has_them():
    assert ray_task_resources({"CPU": 16.0}) == {"num_cpus": 1, "num_gpus": 0}
    assert ray_task_resources({"CPU": 16.0, "GPU": 8.0}) == {"num_cpus": 1, "num_gpus": 1}
    assert ray_task_resources({"CPU": 4.0, "GPU": 0.5}) == {"num_cpus": 1, "num_gpus": 0}


def test_a_cluster_that_cannot_be_joined_is_a_one_line_error_naming_the_fix(tmp_path, monkeypatch):
    def refused(address=None, **kwargs):
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}")

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    with pytest.raises(ValueError) as refused_error:
        execute(plan_experiment(_spec()), executor="ray", log=lambda _: None)
    assert str(refused_error.value) == (
        "executor 'ray': cannot join the Ray cluster at RAY_ADDRESS=10.0.0.7:6379 (Failed to "
        "connect to Ray cluster at 10.0.0.7:6379); check that it runs (ray status --address "
        "...), and for a cluster with token authentication set RAY_AUTH_MODE=token and its "
        "token (~/.ray/auth_token or RAY_AUTH_TOKEN) here too"
    )
    assert not (tmp_path / "runs").exists()  # nothing ran
