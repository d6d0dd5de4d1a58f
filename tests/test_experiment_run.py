"""An experiment end to end: plan, train, evaluate, collect, analyze, report; reuse and resume."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tiny_experiment import tiny_base
from transferlab.experiment import ExperimentSpec, load_results, plan_experiment, run_experiment
from transferlab.experiment import executor as executor_module

TASKS = [{"name": "qa_probe", "max_iter": 20}, {"name": "qa_score", "n_choices": 4}]


def _spec() -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "tiny",
            "base": tiny_base(3),
            "axes": {"lr": {"low": {"optimizer.lr": 1e-4}, "high": {"optimizer.lr": 1e-2}}},
            "seeds": [0, 1],
            "tasks": TASKS,
            "compare": {"baseline": "low"},
            "expect": {"variant": "high", "direction": "better", "task": "qa_probe"},
        }
    )


@pytest.fixture
def counted_train(monkeypatch, tmp_path):
    """Counts pretraining runs; each test gets its own store, so nothing is reused across tests."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    calls = []
    real = executor_module.train

    def train(cfg, resume=False, **options):
        calls.append((cfg.name, resume))
        return real(cfg, resume=resume, **options)

    monkeypatch.setattr(executor_module, "train", train)
    return calls


def test_experiment_runs_end_to_end_and_reuses_finished_stages(tmp_path, counted_train):
    spec = _spec()
    result = run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    assert len(counted_train) == 4

    tables = load_results(tmp_path / "exp")
    n_test_items = 8 * 6  # 16 people, half QA-test, six attributes
    assert tables.examples.num_rows == 4 * 2 * n_test_items
    assert sorted(set(tables.examples.column("task").to_pylist())) == ["qa_probe", "qa_score"]
    assert tables.runs.num_rows == 4
    assert set(tables.runs.column("variant").to_pylist()) == {"low", "high"}

    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    correct = [e for e in summary["estimates"] if e["metric"] == "correct"]
    assert {(e["task"], e["variant"]) for e in correct} == {
        (t, v) for t in ("qa_probe", "qa_score") for v in ("low", "high")
    }
    assert all(e["n_seeds"] == 2 and e["n_examples"] == n_test_items for e in correct)
    comparison = next(
        c for c in summary["comparisons"] if c["task"] == "qa_probe" and c["metric"] == "correct"
    )
    assert (comparison["variant"], comparison["reference"]) == ("high", "low")
    assert comparison["low"] <= comparison["diff"] <= comparison["high"]
    assert summary["verdict"]["status"] in {"reproduced", "not reproduced", "inconclusive"}
    assert result.verdict.startswith(summary["verdict"]["status"])
    assert result.report.is_file()
    # What each variant pretrained on: the world's whole training split, once, for both.
    data = pq.read_table(tmp_path / "exp" / "results" / "data.parquet").to_pylist()
    assert [(r["variant"], r["domain"], r["epochs"]) for r in data] == [
        ("low", "bios", 1.0),
        ("high", "bios", 1.0),
    ]
    assert data[0]["tokens"] == data[0]["sampled_tokens"] == data[1]["tokens"] > 0
    assert "<h2>Data</h2>" in result.report.read_text()

    # A second run of the same experiment trains and evaluates nothing and gives the same rows.
    again = run_experiment(spec, tmp_path / "exp2", log=lambda _: None)
    assert len(counted_train) == 4
    assert again.summary["estimates"] == result.summary["estimates"]
    plan = json.loads((tmp_path / "exp2" / "plan.json").read_text())
    assert {r["status"] for r in plan["runs"]} == {"done"}


def test_an_interrupted_experiment_resumes_without_redoing_finished_work(
    tmp_path, counted_train, monkeypatch
):
    spec = _spec()
    real_run_job = executor_module.run_job
    done = []

    def crash_on_third(job):
        if len(done) == 2:
            raise KeyboardInterrupt("killed")
        done.append(real_run_job(job))
        return done[-1]

    monkeypatch.setattr(executor_module, "run_job", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    plan = plan_experiment(spec)
    assert [r.status() for r in plan.runs] == ["done", "done", "todo", "todo"]

    monkeypatch.setattr(executor_module, "run_job", real_run_job)
    run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    trained = [name for name, _ in counted_train]
    assert len(trained) == 4 and len(set(trained)) == 4  # no run trained twice
    examples = pq.read_table(tmp_path / "exp" / "results" / "examples.parquet")
    assert examples.num_rows == 4 * 2 * 48


def test_a_killed_finetuning_evaluation_resumes_and_keeps_its_metrics(tmp_path, monkeypatch):
    """qa_finetune trains on the engine in the evaluation's work directory: killed mid-way, the
    next run resumes it from its checkpoint, and the finished evaluation holds the fine-tuning's
    metrics; the rows equal those of an uninterrupted experiment."""
    from transferlab.train.engine import Engine

    finetune_task = {
        "name": "qa_finetune",
        "steps": 8,
        "batch_size": 8,
        "checkpoint_interval": 3,
        "log_interval": 1,
    }
    data = _spec().to_dict() | {"tasks": [finetune_task], "axes": {}, "seeds": [0]}
    data["compare"] = {}
    data["expect"] = None
    spec = ExperimentSpec.model_validate(data)

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "whole"))
    whole = run_experiment(spec, tmp_path / "exp-whole", log=lambda _: None)

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "killed"))
    real = Engine.train_step

    def killed_in_finetuning(self):
        if self.settings.label == "finetune" and self.step == 5:
            raise KeyboardInterrupt("killed")
        return real(self)

    with monkeypatch.context() as patch:
        patch.setattr(Engine, "train_step", killed_in_finetuning)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(spec, tmp_path / "exp-killed", log=lambda _: None)
    (planned,) = plan_experiment(spec).evals
    assert [p.name for p in (planned.work_dir / "finetune" / "checkpoints").iterdir()] == [
        "step_00000003"
    ]
    resumed = run_experiment(spec, tmp_path / "exp-killed", log=lambda _: None)
    assert not planned.work_dir.exists()
    metrics = (planned.out_dir / "finetune_metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in metrics] == list(range(1, 9))
    a, b = (load_results(r.exp_dir).examples for r in (whole, resumed))
    keep = ["example_id", "prediction", "correct", "p_correct"]
    assert a.select(keep).to_pylist() == b.select(keep).to_pylist()
