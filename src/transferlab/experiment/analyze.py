"""From result tables to the numbers a report shows: per-variant estimates with intervals, paired
comparisons with verdicts, per-group tables, the tasks' notes, loss-vs-downstream rank
correlations, the measures of the training runs (``measure_analysis``), and the experiment's
verdicts on its stated expectations (``verdicts``)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transferlab.analysis import Rows, align, compare_paired, estimate_mean, pivot, spearman
from transferlab.config import MetricSpec, TaskConfig
from transferlab.experiment.decision_analysis import analyze_decisions
from transferlab.experiment.measure_analysis import add_holm, analyze_measures
from transferlab.experiment.results import ResultTables
from transferlab.experiment.spec import ExperimentSpec
from transferlab.experiment.verdicts import NO_EXPECTATION, expectation_verdicts


def analyze(spec: ExperimentSpec, tables: ResultTables) -> dict[str, Any]:
    """The JSON-able summary of an experiment (``summary.json``).

    Each task is estimated, compared and correlated on exactly the metrics it declares, with the
    direction and range of its declaration; ``metrics`` records those declarations (and the
    metric the report shows per task), ``skipped`` each task not compared on the primary metric
    because it does not declare it. A spec with ``sizes`` is analyzed within each size, every
    entry naming its ``size``, and gains ``decisions``: the ladder's decision accuracy and
    signal-to-noise (``decision_analysis``). ``measures`` holds one entry per measure of the
    spec, ``verdicts`` one per expectation (a task's judged at the largest size); ``verdict`` is the first of them (what a summary held
    before expectations could be several).
    """
    primary = spec.primary_metric
    summary: dict[str, Any] = {
        "experiment": spec.name,
        "description": spec.description,
        "primary_metric": primary,
        "level": spec.compare.level,
        "metrics": {},
        "skipped": [],
        "estimates": [],
        "groups": [],
        "comparisons": [],
        "correlations": [],
    }
    for task_cfg in spec.tasks:
        task = task_cfg.task_name
        summary["metrics"][task] = _declarations(spec, task_cfg)
        if not task_cfg.metric(primary):
            declared = [m.name for m in task_cfg.metrics]
            summary["skipped"].append(
                {
                    "task": task,
                    "metric": primary,
                    "reason": f"{task} does not declare {primary} (it declares {declared})",
                }
            )
    summary["curves"] = []
    # A spec with sizes is analyzed size by size: its variants are compared within a size, and
    # each entry names its size. Without sizes there is one unnamed size: the entries as before.
    for size in spec.size_ladder():
        part = tables if size is None else tables.at_size(size)
        for key, rows in _task_results(spec, part).items():
            summary[key] += _sized(rows, size)
        summary["curves"] += _sized(_curves(spec, part.curves), size)
    summary["notes"] = task_notes(tables.notes)
    summary["measures"] = analyze_measures(spec, tables.measures, tables.runs)
    if spec.sizes:
        summary["decisions"] = analyze_decisions(spec, tables.examples, tables.curves)
    summary["verdicts"] = expectation_verdicts(
        spec,
        _at_target(spec, summary["comparisons"]),
        summary["measures"],
        _at_target(spec, summary["estimates"]),
        summary.get("decisions"),
    )
    summary["verdict"] = summary["verdicts"][0] if summary["verdicts"] else dict(NO_EXPECTATION)
    return summary


def _task_results(spec: ExperimentSpec, tables: ResultTables) -> dict[str, list[dict[str, Any]]]:
    """Per task, on each metric it declares: estimates, per-group estimates (of the shown
    metric), comparisons and loss-vs-metric correlations."""
    examples = tables.examples
    out: dict[str, list[dict[str, Any]]] = {
        "estimates": [],
        "groups": [],
        "comparisons": [],
        "correlations": [],
    }
    for task_cfg in spec.tasks:
        task = task_cfg.task_name
        metrics = [m for m in task_cfg.metrics if m.name in examples.column_names]
        for metric in metrics:
            out["estimates"] += _estimates(spec, examples, task, metric)
        shown = task_cfg.metric(_declarations(spec, task_cfg)["shown"])
        if shown is not None and shown in metrics:
            out["groups"] += _group_estimates(spec, examples, task, shown)
        out["comparisons"] += _comparisons(spec, examples, task, metrics)
        out["correlations"] += _correlations(spec, tables, task, metrics)
    return out


def _sized(rows: list[dict[str, Any]], size: str | None) -> list[dict[str, Any]]:
    """``rows`` naming their ``size`` (unchanged without one)."""
    return rows if size is None else [{**row, "size": size} for row in rows]


def _at_target(spec: ExperimentSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the largest size, where a task expectation is judged (all without sizes)."""
    if not spec.sizes:
        return rows
    return [row for row in rows if row["size"] == spec.largest_size]


def task_notes(table: pa.Table) -> list[dict[str, Any]]:
    """The tasks' notes per (task, note, group, variant), in the order first written: the
    lowest and highest value over the variant's runs (equal when its seeds share the data), and
    how many runs noted it."""
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in table.to_pylist():
        key = (row["task"], row["name"], row["group"], row["variant"])
        entry = merged.setdefault(
            key,
            {
                "task": row["task"],
                "name": row["name"],
                "group": row["group"],
                "variant": row["variant"],
                "description": row["description"],
                "low": row["value"],
                "high": row["value"],
                "runs": 0,
            },
        )
        entry["low"], entry["high"] = (
            min(entry["low"], row["value"]),
            max(entry["high"], row["value"]),
        )
        entry["runs"] += 1
    return list(merged.values())


def _curves(spec: ExperimentSpec, table: pa.Table) -> list[dict[str, Any]]:
    """Transfer curves: per curve task, variant and evaluated step, the mean of the task's
    headline metric with its interval over seeds and examples (as ``estimates`` are)."""
    out = []
    for task_cfg in spec.curve_tasks():
        task, metric = task_cfg.task_name, next(iter(task_cfg.metrics), None)
        if metric is None or metric.name not in table.column_names:
            continue
        for variant in spec.variant_names():
            sub = _select(table, task=task, variant=variant)
            for step in sorted(set(sub.column("step").to_pylist())):
                rows = _rows(sub, task, variant, metric.name, step=step)
                if rows is None:
                    continue
                values = pivot(rows).values
                est = estimate_mean(values, level=spec.compare.level, bounds=metric.bounds())
                out.append(
                    {
                        "task": task,
                        "metric": metric.name,
                        "higher_is_better": metric.higher_is_better,
                        "stage": spec.curves_stage,
                        "variant": variant,
                        "step": step,
                        "tokens": _select(sub, step=step).column("tokens")[0].as_py(),
                        **asdict(est),
                    }
                )
    return out


def _declarations(spec: ExperimentSpec, task: TaskConfig) -> dict[str, Any]:
    """What ``task`` declares, and the metric it is shown by: the primary one if it declares
    it, else its headline (first declared) metric."""
    shown = spec.shown_metric(task)
    return {
        "shown": shown.name if shown else None,
        "declared": [metric.to_dict() for metric in task.metrics],
    }


def _estimates(
    spec: ExperimentSpec, table: pa.Table, task: str, metric: MetricSpec
) -> list[dict[str, Any]]:
    out = []
    for variant in spec.variant_names():
        rows = _rows(table, task, variant, metric.name)
        if rows is None:
            continue
        est = estimate_mean(pivot(rows).values, level=spec.compare.level, bounds=metric.bounds())
        out.append(
            {
                "task": task,
                "metric": metric.name,
                "variant": variant,
                "higher_is_better": metric.higher_is_better,
                **asdict(est),
            }
        )
    return out


def _select(table: pa.Table, **equal: Any) -> pa.Table:
    mask = None
    for column, value in equal.items():
        cond = pc.equal(table.column(column), value)
        mask = cond if mask is None else pc.and_(mask, cond)
    return table.filter(mask)


def _rows(table: pa.Table, task: str, variant: str, metric: str, **extra: Any) -> Rows | None:
    sub = _select(table, task=task, variant=variant, **extra)
    if sub.num_rows == 0:
        return None
    values = sub.column(metric).to_numpy(zero_copy_only=False).astype(float)
    keep = np.isfinite(values)
    if not keep.any():
        return None
    return Rows(
        seed=sub.column("seed").to_numpy()[keep],
        example_id=np.asarray(sub.column("example_id").to_pylist(), dtype=object)[keep],
        value=values[keep],
    )


def _group_estimates(
    spec: ExperimentSpec, table: pa.Table, task: str, metric: MetricSpec
) -> list[dict[str, Any]]:
    out = []
    task_rows = _select(table, task=task)
    for group in sorted(set(task_rows.column("group").to_pylist())):
        for variant in spec.variant_names():
            rows = _rows(table, task, variant, metric.name, group=group)
            if rows is None:
                continue
            est = estimate_mean(
                pivot(rows).values, level=spec.compare.level, bounds=metric.bounds()
            )
            out.append(
                {
                    "task": task,
                    "group": group,
                    "variant": variant,
                    "metric": metric.name,
                    **asdict(est),
                }
            )
    return out


def _comparisons(
    spec: ExperimentSpec, table: pa.Table, task: str, metrics: list[MetricSpec]
) -> list[dict[str, Any]]:
    out = []
    for metric in metrics:
        name = metric.name
        found = []
        for variant, reference in spec.compared_pairs():
            a, b = _rows(table, task, variant, name), _rows(table, task, reference, name)
            if a is not None and b is not None:
                found.append((variant, reference, align(a, b)))
        # The family is this task's comparisons on this metric: what a correction counts.
        level = spec.compare.family_level(len(found))
        family = []
        for variant, reference, paired in found:
            result = compare_paired(
                paired.a,
                paired.b,
                higher_is_better=metric.higher_is_better,
                min_effect=spec.compare.min_effect if name == spec.primary_metric else 0.0,
                level=level,
            )
            family.append(
                {
                    "task": task,
                    "metric": name,
                    "variant": variant,
                    "reference": reference,
                    **asdict(result),
                    "n_dropped": paired.n_dropped_a + paired.n_dropped_b,
                }
            )
        if spec.compare.correction == "holm":
            add_holm(family)
        out += family
    return out


def _correlations(
    spec: ExperimentSpec, tables: ResultTables, task: str, metrics: list[MetricSpec]
) -> list[dict[str, Any]]:
    """Spearman rank correlation across runs between final validation loss and each metric."""
    runs = tables.runs.to_pylist()
    out = []
    for metric in (m.name for m in metrics):
        loss, score = [], []
        for run in runs:
            sub = _select(tables.examples, task=task, run_id=run["run_id"])
            if sub.num_rows == 0:
                continue
            values = sub.column(metric).to_numpy(zero_copy_only=False).astype(float)
            loss.append(run["final_val_loss"])
            score.append(float(np.nanmean(values)) if np.isfinite(values).any() else math.nan)
        corr = spearman(np.array(loss), np.array(score), level=spec.compare.level)
        out.append({"task": task, "metric": metric, **asdict(corr)})
    return out
