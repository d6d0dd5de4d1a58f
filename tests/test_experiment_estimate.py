"""The --dry-run estimate: training steps of the planned shape timed on this machine, cached per
machine, and close to the measured wall time of the run it estimates."""

from __future__ import annotations

import json

import torch

from transferlab.experiment import estimate


def run_config(tiny_config, **trainer):
    cfg = tiny_config()
    return cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update=trainer)})


def test_step_time_is_measured_once_per_machine_and_shape(tiny_config, tmp_path, monkeypatch):
    calls = []
    measure = estimate._measure_steps
    monkeypatch.setattr(
        estimate, "_measure_steps", lambda cfg, threads: calls.append(cfg) or measure(cfg, threads)
    )
    cfg = run_config(tiny_config)
    first = estimate.step_seconds(cfg)
    assert first > 0 and estimate.step_seconds(cfg) == first and len(calls) == 1
    table = json.loads((estimate.machine_dir() / "steps.json").read_text())
    assert list(table.values()) == [first]
    wider = cfg.model_copy(update={"model": cfg.model.model_copy(update={"d_model": 64})})
    estimate.step_seconds(wider)  # another shape: measured and added
    assert (
        len(calls) == 2
        and len(json.loads((estimate.machine_dir() / "steps.json").read_text())) == 2
    )
    threads = torch.get_num_threads()
    other = estimate.machine_dir()
    try:
        torch.set_num_threads(threads + 1)  # another machine, as far as speed goes
        assert estimate.machine_dir() != other
    finally:
        torch.set_num_threads(threads)
    assert estimate.machine_dir().parent == estimate.cache_root() / "machine"
    assert estimate.machine_dir(threads + 1) != other  # a pool worker's threads: measured apart


def test_the_wall_time_spreads_runs_over_the_jobs_but_not_a_chain(monkeypatch):
    """Two independent runs of 10 s take 10 s on two jobs; a parent and child of 10 s each take
    20 s however many jobs there are."""
    from types import SimpleNamespace

    monkeypatch.setattr(estimate, "run_seconds", lambda run, plan, threads: 10.0)

    def plan(*parents):
        runs = [
            SimpleNamespace(key=f"r{i}", parent=parent, status=lambda: "todo")
            for i, parent in enumerate(parents)
        ]
        return SimpleNamespace(runs=runs)

    assert estimate.estimate_seconds(plan(None, None), jobs=2) == 10.0
    assert estimate.estimate_seconds(plan(None, None), jobs=1) == 20.0
    assert estimate.estimate_seconds(plan(None, "r0"), jobs=2) == 20.0
    assert estimate.estimate_seconds(plan(None, "r0", None, None), jobs=2) == 20.0


def test_measuring_leaves_the_rng_alone(tiny_config, tmp_path):
    cfg = run_config(tiny_config)
    state = torch.get_rng_state()
    estimate.step_seconds(cfg)
    assert torch.equal(torch.get_rng_state(), state)
