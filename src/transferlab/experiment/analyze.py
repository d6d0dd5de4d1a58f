"""From result tables to the numbers a report shows: per-variant estimates with intervals, paired
comparisons with verdicts, per-group tables, loss-vs-downstream rank correlations, and the
experiment's verdict on its stated expectation."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transferlab.analysis import Rows, align, compare_paired, estimate_mean, pivot, spearman
from transferlab.experiment.results import ResultTables
from transferlab.experiment.spec import ExperimentSpec

# Per-example columns a task may fill; accuracy-like ones get intervals clipped to [0, 1].
METRICS = ("correct", "acc_norm", "p_correct", "norm_p_correct", "margin")
BOUNDED = {
    "correct": (0.0, 1.0),
    "acc_norm": (0.0, 1.0),
    "p_correct": (0.0, 1.0),
    "norm_p_correct": (0.0, 1.0),
    "margin": (-1.0, 1.0),
}


def analyze(spec: ExperimentSpec, tables: ResultTables) -> dict[str, Any]:
    """The JSON-able summary of an experiment (``summary.json``)."""
    examples = tables.examples
    tasks = [t.task_name for t in spec.tasks]
    metrics = [m for m in METRICS if m in examples.column_names and _has_values(examples, m)]
    summary: dict[str, Any] = {
        "experiment": spec.name,
        "description": spec.description,
        "primary_metric": spec.compare.metric,
        "level": spec.compare.level,
        "estimates": [],
        "groups": [],
        "comparisons": [],
        "correlations": [],
    }
    for task in tasks:
        # Only the scores this task defines (code_likelihood has no accuracy, a probe no acc_norm).
        task_rows = _select(examples, task=task)
        task_metrics = [m for m in metrics if task_rows.num_rows and _has_values(task_rows, m)]
        for metric in task_metrics:
            for variant in spec.variant_names():
                rows = _rows(examples, task, variant, metric)
                if rows is None:
                    continue
                est = estimate_mean(
                    pivot(rows).values, level=spec.compare.level, bounds=BOUNDED.get(metric)
                )
                summary["estimates"].append(
                    {"task": task, "metric": metric, "variant": variant, **asdict(est)}
                )
        summary["groups"] += _group_estimates(spec, examples, task)
        summary["comparisons"] += _comparisons(spec, examples, task, task_metrics)
        summary["correlations"] += _correlations(spec, tables, task, task_metrics)
    summary["verdict"] = expectation_verdict(spec, summary["comparisons"])
    return summary


def _has_values(table: pa.Table, column: str) -> bool:
    values = table.column(column).to_numpy(zero_copy_only=False).astype(float)
    return bool(np.isfinite(values).any())


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


def _group_estimates(spec: ExperimentSpec, table: pa.Table, task: str) -> list[dict[str, Any]]:
    metric = spec.compare.metric
    if metric not in table.column_names:
        return []
    out = []
    task_rows = _select(table, task=task)
    for group in sorted(set(task_rows.column("group").to_pylist())):
        for variant in spec.variant_names():
            rows = _rows(table, task, variant, metric, group=group)
            if rows is None:
                continue
            est = estimate_mean(
                pivot(rows).values, level=spec.compare.level, bounds=BOUNDED.get(metric)
            )
            out.append(
                {"task": task, "group": group, "variant": variant, "metric": metric, **asdict(est)}
            )
    return out


def _comparisons(
    spec: ExperimentSpec, table: pa.Table, task: str, metrics: list[str]
) -> list[dict[str, Any]]:
    out = []
    for metric in metrics:
        higher = spec.compare.higher_is_better if metric == spec.compare.metric else True
        for variant, reference in spec.comparison_pairs():
            a, b = _rows(table, task, variant, metric), _rows(table, task, reference, metric)
            if a is None or b is None:
                continue
            paired = align(a, b)
            result = compare_paired(
                paired.a,
                paired.b,
                higher_is_better=higher,
                min_effect=spec.compare.min_effect if metric == spec.compare.metric else 0.0,
                level=spec.compare.level,
            )
            out.append(
                {
                    "task": task,
                    "metric": metric,
                    "variant": variant,
                    "reference": reference,
                    **asdict(result),
                    "n_dropped": paired.n_dropped_a + paired.n_dropped_b,
                }
            )
    return out


def _correlations(
    spec: ExperimentSpec, tables: ResultTables, task: str, metrics: list[str]
) -> list[dict[str, Any]]:
    """Spearman rank correlation across runs between final validation loss and each metric."""
    runs = tables.runs.to_pylist()
    out = []
    for metric in metrics:
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


def expectation_verdict(spec: ExperimentSpec, comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """reproduced / not reproduced / inconclusive, from the comparison the expectation names."""
    if spec.expect is None:
        return {"status": "none", "text": "no expectation stated; see the comparisons"}
    task = spec.expect.task or spec.tasks[0].task_name
    metric = spec.compare.metric
    for comp in comparisons:
        if comp["task"] != task or comp["metric"] != metric:
            continue
        if spec.expect.variant not in (comp["variant"], comp["reference"]):
            continue
        sign = 1 if comp["variant"] == spec.expect.variant else -1
        observed = comp["verdict"]
        if sign < 0 and observed != "inconclusive":
            observed = "worse" if observed == "better" else "better"
        other = comp["reference"] if sign > 0 else comp["variant"]
        if observed == "inconclusive":
            status = "inconclusive"
        else:
            status = "reproduced" if observed == spec.expect.direction else "not reproduced"
        diff, low, high = (sign * comp["diff"], *sorted((sign * comp["low"], sign * comp["high"])))
        text = (
            f"{status}: {spec.expect.variant} vs {other} on {task} ({metric}): "
            f"difference {diff:+.3f} [{low:+.3f}, {high:+.3f}] "
            f"({comp['level']:.0%} interval; n = {comp['n_seeds']} seeds x "
            f"{comp['n_examples']} examples); expected {spec.expect.direction}"
        )
        return {
            "status": status,
            "text": text,
            "task": task,
            "metric": metric,
            "variant": spec.expect.variant,
            "reference": other,
            "diff": diff,
            "low": low,
            "high": high,
            "expected": spec.expect.direction,
        }
    return {
        "status": "inconclusive",
        "text": f"inconclusive: no comparison of {spec.expect.variant} on {task} ({metric})",
    }
