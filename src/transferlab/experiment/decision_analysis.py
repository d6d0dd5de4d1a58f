"""The ``decisions`` section of a summary with ``sizes``: would the smaller sizes have chosen as
the largest does? (``analysis.decisions`` holds the statistics and their definitions.)

Each run is scored on each metric of each task by its mean over the task's examples. Per task:

- ``accuracy``: per smaller size and declared metric, the decision accuracy of that size's
  order of the variants, by that metric, against the target: the order at the largest size by
  the task's *target metric* (the metric the task is shown by: the primary metric when it
  declares it, else its headline metric, e.g. ``correct``), as DataDecide ranks recipes at the
  target scale by the benchmark's accuracy. Metric directions are read from the declarations.
- ``differences``: per metric and per smaller size (and ``size: null``, the mean over the
  smaller sizes), its decision accuracy minus that of another metric of the task (the target
  metric, and any ``than`` a decision expectation names), paired on the same replicates.
- ``snr``: per size and metric, Heineman et al.'s signal, noise (over seeds) and SNR; where the
  runs recorded transfer curves of the task (``curves:``, a curve task of the same label), also
  the noise over each run's final checkpoints (its last ``FINAL_CHECKPOINTS`` evaluated steps)
  and the SNR against it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transferlab.analysis.decisions import (
    CHANCE,
    DEFAULT_RESAMPLES,
    FINAL_CHECKPOINTS,
    DecisionBootstrap,
    oriented,
    signal_to_noise,
)
from transferlab.config import MetricSpec, TaskConfig
from transferlab.experiment.spec import ExperimentSpec

Row = dict[str, Any]
BOOTSTRAP_SEED = 0  # the decisions' replicates are drawn from this seed: summaries reproduce


def analyze_decisions(spec: ExperimentSpec, examples: pa.Table, curves: pa.Table) -> dict[str, Any]:
    """The ``decisions`` section of ``summary.json`` (see the module docstring); ``curves``:
    the results' transfer curves (empty without ``curves:``)."""
    out: dict[str, Any] = {
        "sizes": spec.size_names(),
        "largest": spec.largest_size,
        "chance": CHANCE,
        "level": spec.compare.level,
        "resamples": DEFAULT_RESAMPLES,
        "accuracy": [],
        "differences": [],
        "snr": [],
    }
    for task in spec.tasks:
        scores = _task_scores(spec, examples, task)
        out["snr"] += _signal_noise(task, scores, final_checkpoints(curves, task))
        accuracy, differences = _task_decisions(spec, task, scores)
        out["accuracy"] += accuracy
        out["differences"] += differences
    return out


def _task_decisions(
    spec: ExperimentSpec, task: TaskConfig, scores: dict[tuple[str, str], np.ndarray]
) -> tuple[list[Row], list[Row]]:
    """The ``accuracy`` and ``differences`` rows of one task (none when the largest size has
    no target scores or no smaller size has every metric)."""
    # The target: the order at the largest size by the metric the task is shown by.
    target, metrics = spec.shown_metric(task), _names(task, scores)
    if target is None or (spec.largest_size, target.name) not in scores:
        return [], []
    smaller = [s for s in spec.size_names()[:-1] if all((s, m) in scores for m in metrics)]
    if not smaller:
        return [], []
    boot = DecisionBootstrap(
        [{m: scores[(s, m)] for m in metrics} for s in smaller],
        scores[(spec.largest_size, target.name)],
        resamples=DEFAULT_RESAMPLES,
        seed=BOOTSTRAP_SEED,
    )
    level, identity = spec.compare.level, {"task": task.task_name, "target_metric": target.name}
    accuracy = [
        {**identity, "metric": m, "size": size, **asdict(boot.accuracy(i, m, level))}
        for i, size in enumerate(smaller)
        for m in metrics
    ]
    # Per smaller size, and the mean over them (size None).
    picks = [*((s, [i]) for i, s in enumerate(smaller)), (None, list(range(len(smaller))))]
    differences = [
        {
            **identity,
            "metric": m,
            "than": than,
            "size": size,
            **asdict(boot.difference(m, than, picked, level)),
        }
        for than in _reference_metrics(spec, task, target, metrics)
        for m in metrics
        if m != than
        for size, picked in picks
    ]
    return accuracy, differences


def _names(task: TaskConfig, scores: dict[tuple[str, str], np.ndarray]) -> list[str]:
    """The task's declared metrics that every run was scored on."""
    return [m.name for m in task.metrics if any(key[1] == m.name for key in scores)]


def _reference_metrics(
    spec: ExperimentSpec, task: TaskConfig, target: MetricSpec, metrics: list[str]
) -> list[str]:
    """The metrics the others are compared with: the target, and each ``than`` a decision
    expectation on ``task`` names."""
    named = [
        e.than
        for e in spec.expectations
        if e.decision == "better" and spec.expectation_task(e) == task.task_name
    ]
    return [m for m in dict.fromkeys([target.name, *named]) if m in metrics]


def _task_scores(
    spec: ExperimentSpec, examples: pa.Table, task: TaskConfig
) -> dict[tuple[str, str], np.ndarray]:
    """(size, metric) -> the oriented [variant, seed] matrix of run means over examples, for
    each size where every variant has a score on the same seeds (at least one)."""
    out = {}
    rows = examples.filter(pc.equal(examples.column("task"), task.task_name))
    for metric in (m for m in task.metrics if m.name in rows.column_names):
        means = _run_means(rows, metric.name)
        for size in spec.size_names():
            matrix = _matrix(means, size, spec.variant_names(), spec.seeds)
            if matrix is not None:
                out[(size, metric.name)] = oriented(matrix, metric.higher_is_better)
    return out


def _run_means(rows: pa.Table, metric: str) -> dict[tuple[str, str, int], float]:
    """(size, variant, seed) -> the mean of ``metric`` over the run's examples (finite only)."""
    values = rows.column(metric).to_numpy(zero_copy_only=False).astype(float)
    finite = rows.filter(pa.array(np.isfinite(values)))
    grouped = finite.group_by(["size", "variant", "seed"]).aggregate([(metric, "mean")])
    return {
        (row["size"], row["variant"], row["seed"]): row[f"{metric}_mean"]
        for row in grouped.to_pylist()
    }


def _matrix(
    means: dict[tuple[str, str, int], float], size: str, variants: list[str], seeds: list[int]
) -> np.ndarray | None:
    """The [variant, seed] matrix of ``size`` on the seeds every variant has (None: none)."""
    common = [s for s in seeds if all((size, v, s) in means for v in variants)]
    if not common or len(variants) < 2:
        return None
    return np.array([[means[(size, v, s)] for s in common] for v in variants])


def final_checkpoints(curves: pa.Table, task: TaskConfig) -> dict[tuple[str, str], np.ndarray]:
    """(size, metric) -> the [run, checkpoint] matrix of each run's mean over examples at its
    last ``FINAL_CHECKPOINTS`` evaluated steps (as many as every run has, at least 2), from the
    transfer curves of a curve task labelled as ``task``; empty without such curves."""
    if "size" not in curves.column_names or curves.num_rows == 0:
        return {}
    rows = curves.filter(pc.equal(curves.column("task"), task.task_name))
    out = {}
    for metric in (m.name for m in task.metrics if m.name in rows.column_names):
        grouped = rows.group_by(["size", "variant", "seed", "step"]).aggregate([(metric, "mean")])
        runs: dict[tuple[str, str], dict[tuple[str, int], list[tuple[int, float]]]] = {}
        for row in grouped.to_pylist():
            run = runs.setdefault((row["size"], metric), {})
            run.setdefault((row["variant"], row["seed"]), []).append(
                (row["step"], row[f"{metric}_mean"])
            )
        for key, by_run in runs.items():
            n = min(FINAL_CHECKPOINTS, *(len(points) for points in by_run.values()))
            if n >= 2:
                out[key] = np.array([[v for _, v in sorted(p)[-n:]] for p in by_run.values()])
    return out


def _signal_noise(
    task: TaskConfig,
    scores: dict[tuple[str, str], np.ndarray],
    checkpoints: dict[tuple[str, str], np.ndarray],
) -> list[Row]:
    """Signal, noise and SNR per (size, metric) with at least 2 seeds, in the metric's own
    orientation (a lower-is-better metric is turned back before its mean is taken), with the
    checkpoint noise where ``checkpoints`` has the (size, metric)."""
    out = []
    for (size, metric), matrix in scores.items():
        if matrix.shape[1] < 2:
            continue
        higher = task.metric(metric).higher_is_better
        # back to the metric's own values
        sn = signal_to_noise(oriented(matrix, higher), checkpoints.get((size, metric)))
        out.append({"task": task.task_name, "metric": metric, "size": size, **asdict(sn)})
    return out
