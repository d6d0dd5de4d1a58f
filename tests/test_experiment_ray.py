"""The Ray executor runs each pending job as a Ray task on a local cluster (needs ray; slow:
starting Ray takes ~10 s)."""

from __future__ import annotations

import pytest

from transferlab.experiment import plan_experiment
from transferlab.experiment.executor import execute

ray = pytest.importorskip("ray")
from test_experiment_run import _spec  # noqa: E402


@pytest.mark.slow
def test_ray_executor_finishes_every_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = _spec()
    plan = plan_experiment(spec)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TRANSFERLAB_CACHE": str(tmp_path / "store")}},
    )
    try:
        lines = []
        execute(plan, executor="ray", log=lines.append)
    finally:
        ray.shutdown()
    assert [r.status() for r in plan.runs] == ["done"] * 4
    assert all(e.status() == "done" for e in plan.evals)
    assert len(lines) == 4 and all(line.endswith("on ray") for line in lines)
