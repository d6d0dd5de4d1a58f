"""Stages in an experiment: a chain of runs per variant and seed, each started from the previous
one's checkpoint and keyed by its parent's key; stage-prefixed axis keys; tasks attached to
stages; parents trained before children; an interrupted two-stage experiment gives the same
result tables as an uninterrupted one."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow.parquet as pq
import pytest
import torch

from transferlab.artifacts import content_key
from transferlab.config import TASKS as TASKS_REGISTRY
from transferlab.config import ConfigError, MetricSpec, TaskConfig
from transferlab.data.prepare import UnknownTokensWarning, data_dir
from transferlab.evaluate import ExampleResult, Task
from transferlab.experiment import ExperimentSpec, plan_experiment, run_experiment
from transferlab.experiment import executor as executor_module
from transferlab.experiment.estimate import estimate_seconds, run_seconds
from transferlab.experiment.executor import Job, _run_graph, pending_jobs
from transferlab.experiment.planner import EVAL_FORMAT_VERSION
from transferlab.train.init import data_config
from transferlab.worlds import BiosConfig

BASE = {
    "world": {"name": "bios", "num_people": 16},
    "data": {"seq_len": 32, "val_fraction": 0.1},
    "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
    "schedule": {"name": "constant"},
    "trainer": {
        "max_steps": 3,
        "batch_size": 4,
        "eval_interval": 3,
        "eval_batches": 1,
        "checkpoint_interval": 3,
        "progress": False,
    },
}
STAGES = [
    {"name": "pretrain"},
    {
        "name": "continue",
        "overrides": {"schedule.warmup_steps": 2, "trainer.max_steps": 4, "optimizer.lr": 3e-3},
    },
]
AXES = {"warmup": {"rewarm": {}, "cold": {"continue.schedule.warmup_steps": 0}}}
TASKS = [
    {"name": "qa_probe", "max_iter": 20},
    {"name": "qa_score", "n_choices": 4, "stage": "pretrain"},
]


def _spec(**fields) -> ExperimentSpec:
    data = {"name": "staged", "base": BASE, "stages": STAGES, "axes": AXES, "tasks": TASKS}
    return ExperimentSpec.model_validate({**data, **fields})


def test_without_stages_run_and_eval_keys_are_those_of_before_stages(tmp_path):
    """Caches and results of experiments without stages stay valid: the run key was computed
    before stages existed (same spec, same store layout); the evaluation key is that of before
    stages at the current row format (declared metrics and unk-free distractors changed the rows)."""
    spec = ExperimentSpec.model_validate(
        {
            "name": "exp",
            "base": {
                "world": {"name": "bios", "num_people": 20},
                "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
                "trainer": {"max_steps": 4, "batch_size": 4},
            },
            "axes": {"lr": {"low": {"optimizer.lr": 1e-3}}},
            "tasks": [{"name": "qa_probe"}],
        }
    )
    plan = plan_experiment(spec, store=tmp_path)
    # The config's key of before stages, with the budget an experiment's run key holds since
    # a cached run of another max_steps stopped being reused (planner.run_key).
    key = content_key("c8cbd5116d5095f8", {"max_steps": 4})
    assert [r.key for r in plan.runs] == [key]
    task = {k: v for k, v in spec.tasks[0].to_dict().items() if k != "stage"}
    assert [e.key for e in plan.evals] == [content_key(key, task, EVAL_FORMAT_VERSION)]
    assert [(r.stage, r.parent, r.config.init) for r in plan.runs] == [("pretrain", None, None)]


def test_stages_chain_runs_that_share_a_parent_and_inherit_its_config(tmp_path):
    spec = _spec(axes={**AXES, "lr": {"slow": {"optimizer.lr": 1e-4}}})
    plan = plan_experiment(spec, store=tmp_path)
    stages = [(r.variant, r.stage) for r in plan.runs]
    assert stages == [
        ("rewarm+slow", "pretrain"),
        ("rewarm+slow", "continue"),
        ("cold+slow", "pretrain"),
        ("cold+slow", "continue"),
    ]
    rewarm_pre, rewarm_cont, cold_pre, cold_cont = plan.runs
    # The variants differ only in the continue stage, so they share one pretraining run.
    assert rewarm_pre.key == cold_pre.key and rewarm_cont.key != cold_cont.key
    assert rewarm_cont.parent == cold_cont.parent == rewarm_pre.key
    init = rewarm_cont.config.init
    assert (init.from_run, init.step, init.optimizer) == (str(rewarm_pre.run_dir), 3, False)
    # A later stage is the previous stage's config plus its overrides: the axis' unprefixed
    # lr reaches the pretraining stage, the stage's own lr override wins in the continue stage.
    assert rewarm_pre.config.optimizer.lr == 1e-4
    assert (rewarm_cont.config.optimizer.lr, rewarm_cont.config.trainer.max_steps) == (3e-3, 4)
    assert rewarm_cont.config.schedule.warmup_steps == 2
    assert cold_cont.config.schedule.warmup_steps == 0
    assert rewarm_cont.config.world == rewarm_pre.config.world
    # Tasks attach to their stage (default: the last).
    attached = {(e.run.variant, e.task.task_name): e.run.stage for e in plan.evals}
    assert attached == {
        (v, t): s
        for v in ("rewarm+slow", "cold+slow")
        for t, s in (("qa_probe", "continue"), ("qa_score", "pretrain"))
    }
    # The shared pretraining run is one job; its qa_score evaluation is one evaluation.
    jobs = pending_jobs(plan)
    assert [j.run.key for j in jobs] == [rewarm_pre.key, rewarm_cont.key, cold_cont.key]
    assert [e.task.task_name for e in jobs[0].evals] == ["qa_score"]


def test_a_childs_key_follows_its_parents_key_not_the_store(tmp_path):
    here = plan_experiment(_spec(), store=tmp_path / "a")
    there = plan_experiment(_spec(), store=tmp_path / "b")
    assert [r.key for r in here.runs] == [r.key for r in there.runs]
    other_base = plan_experiment(_spec(base={**BASE, "optimizer": {"lr": 2e-3}}), tmp_path)
    assert all(a.key != b.key for a, b in zip(here.runs, other_base.runs, strict=True))
    with_optimizer = [{**STAGES[0]}, {**STAGES[1], "init": {"optimizer": True}}]
    other = plan_experiment(_spec(stages=with_optimizer), store=tmp_path)
    assert other.runs[0].key == here.runs[0].key and other.runs[1].key != here.runs[1].key


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stages": [{"name": "a"}, {"name": "a"}]}, "repeat a name"),
        ({"stages": [{"name": "model"}]}, "stage name 'model' must be a word .* not a run config"),
        ({"stages": [{"name": "a.b"}]}, "stage name 'a.b' must be a word"),
        ({"stages": [{"name": "a", "init": {"step": 2}}]}, "stages.0 \\(a\\) has an init"),
        ({"tasks": [{"name": "qa_probe", "stage": "finetune"}]}, "attaches to stage 'finetune'"),
    ],
)
def test_inconsistent_stages_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        _spec(**fields)


def test_a_stage_step_the_parent_does_not_keep_fails_in_one_line(tmp_path):
    stages = [STAGES[0], {**STAGES[1], "init": {"step": 2}}]
    with pytest.raises(ConfigError, match=r"stages.continue.init.step: .* steps \[3\]; choose"):
        plan_experiment(_spec(stages=stages), store=tmp_path)
    bad = {"cold": {"continue.trainer.max_steps": -1}}
    with pytest.raises(
        ConfigError, match=r"^stage continue: base \+ variant overrides .*max_steps"
    ):
        plan_experiment(_spec(axes={"x": bad}), store=tmp_path)


def test_a_child_is_submitted_only_after_its_parent_finished(tmp_path):
    plan = plan_experiment(_spec(), store=tmp_path)
    jobs = [Job(run, ()) for run in {r.key: r for r in plan.runs}.values()]
    events = []

    def submit(job):
        events.append(("submit", job.run.stage))
        return job.run.key

    def wait_any(handles):  # the oldest submitted job finishes first
        events.append(("finish", handles[0]))
        return [handles[0]]

    _run_graph(jobs, submit, wait_any, log=lambda _: None)
    parent = plan.runs[0].key
    assert events == [
        ("submit", "pretrain"),
        ("finish", parent),
        ("submit", "continue"),
        ("submit", "continue"),
        ("finish", plan.runs[1].key),
        ("finish", plan.runs[3].key),
    ]


def _tables(exp_dir: Path) -> tuple[list[dict], list[dict]]:
    """Result rows with NaN as None (so equal rows compare equal), without wall times."""

    def rows(name: str) -> list[dict]:
        table = pq.read_table(exp_dir / "results" / name).to_pylist()
        return [{k: None if v != v else v for k, v in row.items()} for row in table]

    runs = [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows("runs.parquet")]
    return rows("examples.parquet"), runs


def test_an_interrupted_two_stage_experiment_gives_the_same_tables(tmp_path, monkeypatch):
    spec = _spec()
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "reference"))
    run_experiment(spec, tmp_path / "reference-exp", log=lambda _: None)

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    real = executor_module.train
    stops = {"pretrain": 1, "continue": 2}  # each stage is interrupted once, part way
    calls = []

    def interrupting_train(cfg, resume=False, **options):
        stage = "continue" if cfg.init is not None else "pretrain"
        calls.append((stage, resume))
        return real(cfg, resume=resume, stop_after=stops.pop(stage, None), **options)

    monkeypatch.setattr(executor_module, "train", interrupting_train)
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    # The pretraining run was interrupted and resumed, its children started only after it,
    # the first child was interrupted and resumed from its own checkpoint.
    assert calls == [
        ("pretrain", False),
        ("pretrain", True),
        ("continue", False),
        ("continue", True),
        ("continue", False),
    ]
    assert _tables(tmp_path / "exp") == _tables(tmp_path / "reference-exp")
    examples, runs = _tables(tmp_path / "exp")
    assert {(r["task"], r["stage"]) for r in examples} == {
        ("qa_probe", "continue"),
        ("qa_score", "pretrain"),
    }
    assert [(r["variant"], r["stage"], r["steps"]) for r in runs] == [
        ("rewarm", "pretrain", 3),
        ("rewarm", "continue", 4),
        ("cold", "pretrain", 3),
        ("cold", "continue", 4),
    ]
    plan = json.loads((tmp_path / "exp" / "plan.json").read_text())
    assert {(r["stage"], r["status"], r["estimated_seconds"]) for r in plan["runs"]} == {
        ("pretrain", "done", 0.0),
        ("continue", "done", 0.0),
    }
    parents = {r["run_id"]: r["parent"] for r in plan["runs"]}
    assert [parents[r["run_id"]] for r in runs] == [
        None,
        runs[0]["run_id"],
        None,
        runs[0]["run_id"],
    ]


@pytest.mark.slow
def test_a_process_pool_trains_parents_first_and_gives_the_same_tables(tmp_path, monkeypatch):
    spec = _spec()
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "local"))
    run_experiment(spec, tmp_path / "local-exp", log=lambda _: None)
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "pool"))
    lines = []
    run_experiment(spec, tmp_path / "pool-exp", jobs=2, log=lines.append)
    assert lines[0] == "[1/3] finished rewarm seed 0 stage pretrain"
    children = sorted(line.split("] ", 1)[1] for line in lines[1:])
    assert children == [
        "finished cold seed 0 stage continue",
        "finished rewarm seed 0 stage continue",
    ]
    assert _tables(tmp_path / "pool-exp") == _tables(tmp_path / "local-exp")


@pytest.mark.slow
def test_the_ray_executor_trains_parents_first(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    plan = plan_experiment(_spec())
    env = {"env_vars": {"TRANSFERLAB_CACHE": str(tmp_path / "store")}}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=env)
    try:
        lines = []
        executor_module.execute(plan, executor="ray", log=lines.append)
    finally:
        ray.shutdown()
    assert lines[0] == "[1/3] finished rewarm seed 0 stage pretrain on ray"
    assert len(lines) == 3 and all(r.status() == "done" for r in plan.runs)
    assert all(e.status() == "done" for e in plan.evals)


def test_dry_run_shows_each_chain_with_parents_status_and_time(tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from transferlab.cli import app

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    path = tmp_path / "exp.yaml"
    spec = _spec()
    path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    exp_dir = tmp_path / "exp"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(exp_dir), "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = json.loads((exp_dir / "plan.json").read_text())
    pretrain = plan["runs"][0]["run_id"]
    rows = [(r["variant"], r["stage"], r["parent"], r["status"]) for r in plan["runs"]]
    assert rows == [
        ("rewarm", "pretrain", None, "todo"),
        ("rewarm", "continue", pretrain, "todo"),
        ("cold", "pretrain", None, "todo"),
        ("cold", "continue", pretrain, "todo"),
    ]
    assert all(r["estimated_seconds"] > 0 for r in plan["runs"])
    lines = [line for line in result.output.splitlines() if "todo" in line]
    assert [pretrain in line for line in lines] == [True, False, True, False]  # one shared run
    lines = [line for line in result.output.splitlines() if "todo" in line]
    assert [pretrain in line for line in lines] == [True, False, True, False]
    assert [line.count("pretrain") for line in lines] == [1, 1, 1, 1]  # stage, or "from"
    assert "estimated time" in result.output


def _write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return path


class _MeanLogit(Task[Any]):
    """A task on no world (the runs pretrain on files): the mean output logit of each special
    token, one example each."""

    def read(self, subject) -> list[dict[str, Any]]:
        model, tokenizer, run_id = subject.model, subject.tokenizer, subject.run_id
        rows = []
        for token in tokenizer.special.all:
            with torch.no_grad():
                value = float(model(torch.tensor([[token]])).mean())
            metrics = {"logit": value}
            row = ExampleResult(
                run_id, self.cfg.task_name, str(token), "g", "test", "", "", metrics
            )
            rows.append(row.to_dict())
        return rows


@TASKS_REGISTRY.register("test_mean_logit")
class MeanLogitConfig(TaskConfig):
    name: Literal["test_mean_logit"] = "test_mean_logit"
    uses_world: ClassVar[bool] = False
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("logit", True, (None, None), "mean logit"),
    )

    def build(self) -> _MeanLogit:
        return _MeanLogit(self)


def test_continued_pretraining_on_new_data_with_replay_runs_end_to_end(tmp_path, monkeypatch):
    """Pretrain on one corpus, then continue on a mixture of new data (80%) and replay of the
    first corpus (20%) with a re-warmed schedule: the child reads both with its parent's
    tokenizer and starts from the parent's final weights."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    old = _write_jsonl(tmp_path / "old.jsonl", BiosConfig(num_people=16).build().documents())
    new = _write_jsonl(
        tmp_path / "new.jsonl", BiosConfig(num_people=16, seed=1).build().documents()
    )
    base = {
        **BASE,
        "tokenizer": {"kind": "bpe", "vocab_size": 300},
        "data": {**BASE["data"], "sources": [{"path": str(old), "label": "web"}]},
    }
    sources = [{"path": str(new), "label": "new"}, {"path": str(old), "label": "web"}]
    stages = [
        {"name": "pretrain"},
        {
            "name": "continue",
            "overrides": {
                "data.sources": sources,
                "data.mixture": {"weights": {"new": 0.8, "web": 0.2}},
                "schedule.warmup_steps": 2,
                "trainer.max_steps": 4,
                "trainer.log_interval": 1,
            },
        },
    ]
    spec = _spec(base=base, stages=stages, axes={}, tasks=[{"name": "test_mean_logit"}])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownTokensWarning)  # byte-level BPE knows every text
        run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    parent, child = plan_experiment(spec).runs
    assert (child.run_dir / "tokenizer.json").read_bytes() == (
        parent.run_dir / "tokenizer.json"
    ).read_bytes()
    info = json.loads((data_dir(data_config(child.config)) / "info.json").read_text())
    parent_info = json.loads((data_dir(parent.config) / "info.json").read_text())
    assert info["vocab_size"] == parent_info["vocab_size"]
    assert info["tokenizer"] == {
        "sha256": hashlib.sha256((parent.run_dir / "tokenizer.json").read_bytes()).hexdigest()
    }
    budget = sum(d["tokens"] for d in info["domains"])
    targets = {d["name"]: d["target_tokens"] for d in info["domains"]}
    assert targets == {"new": round(budget * 0.8), "web": round(budget * 0.2)}
    rows = [json.loads(line) for line in (child.run_dir / "metrics.jsonl").open()]
    lr = child.config.optimizer.lr  # re-warmed from the child's own step 0
    assert [(r["step"], r["lr"]) for r in rows] == [(1, lr / 2), (2, lr), (3, lr), (4, lr)]
    _, runs = _tables(tmp_path / "exp")
    assert [(r["stage"], r["parent"], r["steps"]) for r in runs] == [
        ("pretrain", None, 3),
        ("continue", parent.key, 4),
    ]
    examples, _ = _tables(tmp_path / "exp")
    assert {r["stage"] for r in examples} == {"continue"}


def test_the_estimate_of_a_stage_on_other_data_builds_only_its_first_stages_data(
    tmp_path, monkeypatch
):
    """A later stage reads its first stage's tokenizer, so a dry run takes the vocabulary from
    the first stage's data and builds no data stage of its own (it could not: the tokenizer
    it reads does not exist before the first stage trained)."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    stages = [STAGES[0], {**STAGES[1], "overrides": {"world.seed": 1, "world.num_people": 20}}]
    plan = plan_experiment(_spec(stages=stages, axes={}))
    parent, child = plan.runs
    assert run_seconds(child, plan) == pytest.approx(run_seconds(parent, plan), rel=0.2)
    assert estimate_seconds(plan) > 0
    built = [p for p in (tmp_path / "store" / "data").iterdir() if not p.name.endswith(".lock")]
    assert built == [data_dir(parent.config)]
