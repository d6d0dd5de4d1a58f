"""The experiment directory's log of its invocations (``invocations.jsonl``): one line per
completed ``run_experiment``, appended after the report is written, with its wall time and how
much of its work the cache already held.

A wall time means the recipe's cost only when nothing was reused: a second invocation of the
same experiment reuses every finished run and evaluation and takes seconds. So each line counts
the distinct runs and the evaluations of the plan and how many of them were already done when
it started (``runs_reused``, ``evals_reused``; a run resumed from a checkpoint is not reused).
``spec_key`` is the content key of the spec that ran, which is how a reseeded run tells a
finished seed set from one that must (re)run. An invocation that was killed writes no line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transferlab.artifacts import content_key
from transferlab.experiment.planner import Plan
from transferlab.experiment.spec import ExperimentSpec

INVOCATIONS_NAME = "invocations.jsonl"


def spec_key(spec: ExperimentSpec) -> str:
    """The content key of ``spec`` (seeds included)."""
    return content_key(spec.to_dict())


def cache_state(plan: Plan) -> dict[str, int]:
    """The plan's distinct runs and its evaluations, and how many of each are already done."""
    runs = {run.key: run for run in plan.runs}.values()
    return {
        "runs": len(runs),
        "runs_reused": sum(run.status() == "done" for run in runs),
        "evals": len(plan.evals),
        "evals_reused": sum(e.status() == "done" for e in plan.evals),
    }


def record_invocation(exp_dir: Path, entry: dict[str, Any]) -> None:
    """Append ``entry`` as one line of ``EXP_DIR/invocations.jsonl``."""
    with (Path(exp_dir) / INVOCATIONS_NAME).open("a") as log:
        log.write(json.dumps(entry, sort_keys=True) + "\n")


def read_invocations(exp_dir: Path) -> list[dict[str, Any]]:
    """The completed invocations, oldest first (none without a log); a torn last line (a
    process killed while appending) is skipped."""
    path = Path(exp_dir) / INVOCATIONS_NAME
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def last_invocation(exp_dir: Path) -> dict[str, Any] | None:
    found = read_invocations(exp_dir)
    return found[-1] if found else None
