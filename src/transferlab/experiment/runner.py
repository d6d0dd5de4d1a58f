"""One experiment end to end: plan, execute (reusing finished stages), collect, analyze, report."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from transferlab.artifacts import write_json_atomic
from transferlab.experiment.analyze import analyze
from transferlab.experiment.estimate import estimate_seconds, run_seconds, worker_threads
from transferlab.experiment.executor import check_execution, execute
from transferlab.experiment.invocations import cache_state, record_invocation, spec_key
from transferlab.experiment.planner import Plan, plan_experiment
from transferlab.experiment.results import collect_results
from transferlab.experiment.spec import ExperimentSpec


@dataclass(frozen=True)
class ExperimentResult:
    exp_dir: Path
    report: Path
    summary: dict[str, Any]
    seconds: float

    @property
    def verdict(self) -> str:
        """The text of the first verdict (the only one of a single expectation)."""
        return self.summary["verdict"]["text"]

    @property
    def verdicts(self) -> list[str]:
        """The text of each expectation's verdict, in the spec's order."""
        return [verdict["text"] for verdict in self.summary["verdicts"]]


def write_plan(plan: Plan, exp_dir: Path, command: str, jobs: int = 1) -> dict[str, Any]:
    """``experiment.yaml`` and ``plan.json``: what will run, what is already done, how long
    (with ``jobs`` parallel processes)."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "experiment.yaml").write_text(yaml.safe_dump(plan.spec.to_dict(), sort_keys=False))
    info = {
        "command": command,
        "runs": [
            {
                "variant": r.variant,
                **({"size": r.size} if r.size is not None else {}),  # a spec with sizes
                "seed": r.seed,
                "stage": r.stage,
                "run_id": r.key,
                "parent": r.parent,  # run_id of the run it starts from (None: from scratch)
                "run_dir": str(r.run_dir),
                "status": r.status(),
                "estimated_seconds": 0.0
                if r.status() == "done"
                else run_seconds(r, plan, worker_threads(jobs)),
            }
            for r in plan.runs
        ],
        "evals": [
            {"run_id": e.run.key, "task": e.task.task_name, "key": e.key, "status": e.status()}
            for e in plan.evals
        ],
        "estimated_seconds": estimate_seconds(plan, jobs),
        "jobs": jobs,
    }
    write_json_atomic(exp_dir / "plan.json", info)
    return info


def run_experiment(
    spec: ExperimentSpec,
    exp_dir: Path,
    jobs: int = 1,
    executor: str = "local",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> ExperimentResult:
    from transferlab.report import (
        write_report,  # report imports plotting; keep it off the plan path
    )

    start, started_at = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    check_execution(executor, jobs)  # before the plan writes anything
    plan = plan_experiment(spec)
    cached = cache_state(plan)  # before anything runs: what this invocation did not pay for
    write_plan(plan, exp_dir, command or shlex.join(["transferlab", *sys.argv[1:]]), jobs)
    execute(plan, jobs=jobs, executor=executor, log=log)
    tables = collect_results(plan, exp_dir)
    summary = analyze(spec, tables)
    write_json_atomic(exp_dir / "summary.json", summary)
    write_plan(plan, exp_dir, json.loads((exp_dir / "plan.json").read_text())["command"], jobs)
    report = write_report(exp_dir)
    seconds = time.perf_counter() - start
    entry = {"started": started_at, "seconds": seconds, "jobs": jobs, "executor": executor}
    record_invocation(exp_dir, {**entry, **cached, "seeds": spec.seeds, "spec_key": spec_key(spec)})
    return ExperimentResult(exp_dir, report, summary, seconds)
