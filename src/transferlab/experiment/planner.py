"""Turn an experiment spec into stages: one pretraining run per (variant, seed), one evaluation
per (run, task). Each stage is content-addressed, so finished stages are found and reused, and two
experiments that share a stage share its artifact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from transferlab.artifacts import cache_root, content_key, is_complete
from transferlab.config import ConfigError, RunConfig, TaskConfig, set_dotted, validate
from transferlab.experiment.spec import ExperimentSpec
from transferlab.train.checkpoint import checkpoint_step, latest_checkpoint
from transferlab.train.run_dir import config_key

EVAL_FORMAT_VERSION = 2  # 2: rows hold their task's declared metrics only
Status = Literal["done", "partial", "todo"]


@dataclass(frozen=True)
class PlannedRun:
    variant: str
    seed: int
    config: RunConfig
    key: str

    @property
    def run_dir(self) -> Path:
        return Path(self.config.trainer.out_dir) / self.config.name

    def status(self) -> Status:
        latest = latest_checkpoint(self.run_dir)
        if latest is None:
            return "todo"
        return "done" if checkpoint_step(latest) >= self.config.trainer.max_steps else "partial"


@dataclass(frozen=True)
class PlannedEval:
    run: PlannedRun
    task: TaskConfig
    key: str
    out_dir: Path

    @property
    def rows_path(self) -> Path:
        return self.out_dir / "rows.parquet"

    def status(self) -> Status:
        return "done" if is_complete(self.out_dir) else "todo"


@dataclass(frozen=True)
class Plan:
    spec: ExperimentSpec
    runs: list[PlannedRun]
    evals: list[PlannedEval]

    def evals_of(self, run: PlannedRun) -> list[PlannedEval]:
        return [e for e in self.evals if e.run.key == run.key]


def run_config(
    spec: ExperimentSpec, overrides: dict[str, Any], seed: int, store: Path
) -> RunConfig:
    """The run config of one variant and seed, named by its content key inside ``store``."""
    data = set_dotted(spec.base, {**overrides, "seed": seed, "name": "run"})
    try:
        cfg = validate(RunConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"base + variant overrides {overrides}: {exc}") from None
    key = config_key(cfg)
    trainer = cfg.trainer.model_copy(update={"out_dir": str(store / "runs")})
    return cfg.model_copy(update={"name": key, "trainer": trainer})


def plan_experiment(spec: ExperimentSpec, store: Path | None = None) -> Plan:
    store = store or cache_root()
    runs, evals = [], []
    for variant, overrides in spec.variants().items():
        for seed in spec.seeds:
            cfg = run_config(spec, overrides, seed, store)
            run = PlannedRun(variant=variant, seed=seed, config=cfg, key=cfg.name)
            runs.append(run)
            for task in spec.tasks:
                key = content_key(run.key, task.to_dict(), EVAL_FORMAT_VERSION)
                evals.append(PlannedEval(run, task, key, store / "evals" / key))
    return Plan(spec=spec, runs=runs, evals=evals)
