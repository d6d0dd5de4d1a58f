"""Read an experiment directory for the report: the spec, the plan, the results tables, each
run's training curve (and expert routing, for runs with the routing callback) and the analysis
summary.

Only ``experiment.yaml`` is required. Everything else may be missing (an experiment still running,
or one whose analysis has not been written yet); the report then says what is missing instead of
failing, so it can be looked at while the experiment is under way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from transferlab.experiment.spec import IMPLICIT_STAGE
from transferlab.report.formatting import at_size
from transferlab.train.callbacks.routing import read_routing
from transferlab.train.metrics import read_metrics


@dataclass(frozen=True)
class PlannedRunRow:
    variant: str
    seed: int
    run_id: str
    run_dir: Path
    status: str
    stage: str = IMPLICIT_STAGE
    size: str | None = None  # a spec with sizes: its size on the ladder

    @property
    def label(self) -> str:
        """``variant``, or ``variant @ size`` in a spec with sizes (what a figure's line is)."""
        return at_size(self.variant, {"size": self.size})


@dataclass
class ExperimentRecord:
    exp_dir: Path
    spec: dict[str, Any]
    plan: dict[str, Any] | None
    summary: dict[str, Any] | None
    runs: list[dict[str, Any]]  # rows of results/runs.parquet
    examples: pa.Table | None  # results/examples.parquet
    planned: list[PlannedRunRow] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)  # rows of results/data.parquet
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # run_id -> metrics rows
    routing: dict[str, dict[str, Any]] = field(default_factory=dict)  # run_id -> routing.json

    def variants(self) -> list[str]:
        """Variant names in plan order (then any that only the results know)."""
        names = [row.variant for row in self.planned] + [str(r["variant"]) for r in self.runs]
        return list(dict.fromkeys(names))

    def tasks(self) -> list[str]:
        tasks = [t for t in self.spec.get("tasks") or [] if isinstance(t, dict)]
        names = [str(t.get("label") or t.get("name")) for t in tasks]
        if self.summary:
            names += [str(e["task"]) for e in self.summary.get("estimates", [])]
        return list(dict.fromkeys(names))

    def stages(self) -> list[str]:
        """The spec's stage names in chain order (one implicit stage without ``stages``)."""
        stages = [s for s in self.spec.get("stages") or [] if isinstance(s, dict)]
        return [str(s.get("name")) for s in stages] or [IMPLICIT_STAGE]

    def primary_metric(self) -> str:
        if self.summary and self.summary.get("primary_metric"):
            return str(self.summary["primary_metric"])
        return str((self.spec.get("compare") or {}).get("metric") or "correct")

    def shown_metric(self, task: str) -> str:
        return shown_metric(self.summary or {}, task, self.primary_metric())


def verdicts(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's verdicts, one per expectation; without expectations (or in a summary
    written before there could be several) the one ``verdict`` it holds."""
    return list(summary.get("verdicts") or [v for v in [summary.get("verdict")] if v])


def measure_note(row: dict[str, Any]) -> str:
    """What qualifies a measure's estimate or comparison: the picked level, censored runs and
    seeds left out for a missing value."""
    notes = [f"picked {row['picked']}"] if row.get("picked") else []
    if row.get("n_censored"):
        notes.append(f"{row['n_censored']} censored (counted at their budget)")
    if row.get("n_dropped"):
        notes.append(f"{row['n_dropped']} seed(s) without a finite value left out")
    return "; ".join(notes)


def measure_title(measure: dict[str, Any]) -> str:
    """``lr_sensitivity (lower is better; over lr; stage pretrain)``."""
    parts = ["higher is better" if measure["higher_is_better"] else "lower is better"]
    if measure.get("over"):
        how = "pick best" if measure.get("pick") else "sweep"
        parts.append(f"over {measure['over']}, {how}")
    parts.append(f"stage {measure['stage']}")
    return f"{measure['measure']} ({'; '.join(parts)})"


def declared_metrics(summary: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """The metric declarations of ``task`` as analysis recorded them (none in a summary written
    before tasks declared their metrics)."""
    return list(((summary.get("metrics") or {}).get(task) or {}).get("declared") or [])


def shown_metric(summary: dict[str, Any], task: str, primary: str) -> str:
    """The metric ``task`` is shown by: the primary one if it declares it, else its headline."""
    return str(((summary.get("metrics") or {}).get(task) or {}).get("shown") or primary)


def metric_label(summary: dict[str, Any], task: str, metric: str) -> str:
    """``bits_per_byte (lower is better)``: the name with the direction its task declares."""
    for declared in declared_metrics(summary, task):
        if declared["name"] == metric:
            return direction_label(metric, declared["higher_is_better"])
    return metric


def curve_label(row: dict[str, Any]) -> str:
    """The metric of a ``summary.json`` ``curves`` row with its direction."""
    return direction_label(row["metric"], row["higher_is_better"])


def direction_label(metric: str, higher_is_better: bool) -> str:
    return f"{metric} ({'higher' if higher_is_better else 'lower'} is better)"


# How each trainer.validation_weighting makes val_loss of the per-domain losses.
WEIGHTING_TEXT = {
    "mixture": "weighted by each domain's share of the training mixture",
    "tokens": "weighted by each domain's held-out tokens",
    "uniform": "the unweighted mean over the domains",
}


def weightings_stated(runs: list[dict[str, Any]]) -> str:
    """The ``val_weighting``s of the runs (rows of runs.parquet), each with what it means:
    ``mixture: weighted by ...``; ``not recorded`` for runs trained before it was."""
    weightings = sorted({str(r["val_weighting"]) for r in runs if r.get("val_weighting")})
    return "; ".join(f"{w}: {WEIGHTING_TEXT.get(w, w)}" for w in weightings) or "not recorded"


def read_runs(exp_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``results/runs.parquet`` (none before the experiment wrote it)."""
    path = Path(exp_dir) / "results" / "runs.parquet"
    return pq.read_table(path).to_pylist() if path.is_file() else []


def load_experiment(exp_dir: Path) -> ExperimentRecord:
    exp_dir = Path(exp_dir)
    spec_path = exp_dir / "experiment.yaml"
    if not spec_path.is_file():
        raise FileNotFoundError(
            f"{exp_dir} has no experiment.yaml, so it is not an experiment directory; pass the "
            "directory that `transferlab run EXPERIMENT.yaml` wrote"
        )
    spec = yaml.safe_load(spec_path.read_text()) or {}
    plan = _read_json(exp_dir / "plan.json")
    examples_path = exp_dir / "results" / "examples.parquet"
    data_path = exp_dir / "results" / "data.parquet"
    record = ExperimentRecord(
        exp_dir=exp_dir,
        spec=spec,
        plan=plan,
        summary=_read_json(exp_dir / "summary.json"),
        runs=read_runs(exp_dir),
        examples=pq.read_table(examples_path) if examples_path.is_file() else None,
        planned=[_planned_row(exp_dir, run) for run in (plan or {}).get("runs", [])],
        data=pq.read_table(data_path).to_pylist() if data_path.is_file() else [],
    )
    for row in record.planned:
        record.curves[row.run_id] = read_metrics(row.run_dir / "metrics.jsonl")
        routing = read_routing(row.run_dir)
        if routing is not None:
            record.routing[row.run_id] = routing
    return record


def load_summary(exp_dir: Path) -> dict[str, Any]:
    summary = _read_json(Path(exp_dir) / "summary.json")
    if summary is None:
        raise FileNotFoundError(
            f"{exp_dir} has no summary.json; run the experiment to the end first "
            "(transferlab run EXPERIMENT.yaml)"
        )
    return summary


def per_run_means(examples: pa.Table | None, task: str, metric: str) -> dict[str, float]:
    """Run id -> mean of ``metric`` over that run's examples on ``task`` (NaN values left out)."""
    if examples is None or metric not in examples.column_names:
        return {}
    tasks = np.asarray(examples.column("task").to_pylist(), dtype=object)
    run_ids = np.asarray(examples.column("run_id").to_pylist(), dtype=object)
    values = examples.column(metric).to_numpy(zero_copy_only=False).astype(float)
    means = {}
    for run_id in dict.fromkeys(run_ids[tasks == task]):
        chosen = values[(tasks == task) & (run_ids == run_id)]
        chosen = chosen[np.isfinite(chosen)]
        if chosen.size:
            means[str(run_id)] = float(chosen.mean())
    return means


def _planned_row(exp_dir: Path, run: dict[str, Any]) -> PlannedRunRow:
    run_dir = Path(run.get("run_dir", ""))
    return PlannedRunRow(
        variant=str(run["variant"]),
        seed=int(run["seed"]),
        run_id=str(run["run_id"]),
        # A relative run_dir is relative to the experiment directory, so a moved one still works.
        run_dir=run_dir if run_dir.is_absolute() else exp_dir / run_dir,
        status=str(run.get("status", "unknown")),
        stage=str(run.get("stage", IMPLICIT_STAGE)),
        size=run.get("size"),
    )


def unplanned_row(run: dict[str, Any]) -> PlannedRunRow:
    """A run known only from results/runs.parquet (no plan.json): its status is unknown."""
    return PlannedRunRow(
        variant=str(run["variant"]),
        seed=int(run["seed"]),
        run_id=str(run["run_id"]),
        run_dir=Path(),
        status="unknown",
        stage=str(run.get("stage", IMPLICIT_STAGE)),
        size=run.get("size"),
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None
