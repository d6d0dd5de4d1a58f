"""From the per-run values of the spec's measures (``results/measures.parquet``) to what the
summary holds per measure: its values per (collapsed) variant and seed, estimates with
intervals over seeds, and paired comparisons over seeds with verdicts.

A measure gives one number per run, so its [seed, example] matrix has one column: the estimate
is the t interval over seeds (``S - 1`` degrees of freedom) and a comparison is the paired t
interval of the per-seed differences, from ``analysis.estimate_mean`` and
``analysis.compare_paired``, whose ``mde80`` is then ``(t_{1-alpha/2, S-1} + t_{0.8, S-1}) x SE``
of the mean difference over the S paired seeds (NaN from fewer than two). A value that is not
finite (a NaN loss) is missing: its seed drops out of that variant's estimate and of its
comparisons (counted in ``n_dropped``). Holm-adjusted
p-values (``p_holm``) are over the comparisons of one measure; as for tasks, verdicts follow
from the intervals, which ``compare.correction: holm`` puts at the Bonferroni level.

``over: AXIS`` collapses an axis per remaining variant and seed: a sweep measure from the values
at every level (``MeasureConfig.collapse``); any other measure takes the value at the level of
AXIS whose mean final validation loss over seeds is lowest (``pick: best``; ties go to the first
level in axis order). The pick is made on the same seeds that are then compared, so it favours
each variant a little (selection bias); ``pick`` records the chosen level and every level's mean
loss, so a reader can see how close the choice was.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from transferlab.analysis import compare_paired, estimate_mean, holm
from transferlab.experiment.measures import MeasureConfig, RunValue
from transferlab.experiment.spec import ExperimentSpec

SeedValues = dict[int, RunValue]  # seed -> the (collapsed) value of one variant


def analyze_measures(spec: ExperimentSpec, values: pa.Table, runs: pa.Table) -> list[dict]:
    """One summary entry per measure of ``spec``, from ``values`` (results/measures.parquet)
    and ``runs`` (results/runs.parquet, for ``pick: best``)."""
    return [_measure_summary(spec, measure, values, runs) for measure in spec.measures]


def _measure_summary(
    spec: ExperimentSpec, measure: MeasureConfig, table: pa.Table, runs: pa.Table
) -> dict[str, Any]:
    label, stage = measure.measure_label, spec.measure_stage(measure)
    per_run = {
        (row["variant"], row["seed"]): RunValue(row["value"], row["censored"])
        for row in table.to_pylist()
        if row["measure"] == label
    }
    groups = spec.measure_variants(measure)
    picks: dict[str, dict[str, Any]] = {}
    values: dict[str, SeedValues] = {}
    losses = _final_losses(runs, stage) if measure.pick else {}
    for name, members in groups.items():
        if measure.sweep:
            values[name] = _swept(measure, members, per_run, spec.seeds)
        elif measure.over is not None:
            picks[name] = _pick_best(spec, measure.over, members, losses)
            values[name] = _values_of(picks[name]["variant"], per_run, spec.seeds)
        else:
            values[name] = _values_of(name, per_run, spec.seeds)
    pairs = spec.compared_pairs(list(groups), measure=label)
    level = spec.compare.level
    return {
        "measure": label,
        "name": measure.name,
        "description": measure.describe(),
        "higher_is_better": measure.higher_is_better,
        "stage": stage,
        "over": measure.over,
        "pick": measure.pick,
        "level": level,
        "variants": groups,  # each (collapsed) variant -> the experiment's variants it covers
        "values": [
            {"variant": name, "seed": seed, "value": v.value, "censored": v.censored}
            for name, by_seed in values.items()
            for seed, v in by_seed.items()
        ],
        "picks": picks,
        "estimates": [_estimate(name, values[name], level, picks.get(name)) for name in groups],
        "comparisons": _comparisons(
            pairs, values, measure.higher_is_better, spec.compare.family_level(len(pairs))
        ),
    }


def _values_of(
    variant: str, per_run: dict[tuple[str, int], RunValue], seeds: list[int]
) -> SeedValues:
    return {seed: per_run[(variant, seed)] for seed in seeds if (variant, seed) in per_run}


def _swept(
    measure: MeasureConfig,
    members: list[str],
    per_run: dict[tuple[str, int], RunValue],
    seeds: list[int],
) -> SeedValues:
    """Per seed, the sweep measure over the levels' runs of that seed (a seed missing a level is
    left out)."""
    out = {}
    for seed in seeds:
        runs = [per_run.get((member, seed)) for member in members]
        if all(run is not None for run in runs):
            out[seed] = RunValue(measure.collapse([run.value for run in runs]))
    return out


def _final_losses(runs: pa.Table, stage: str) -> dict[tuple[str, int], float]:
    """(variant, seed) -> final validation loss of the runs of ``stage`` (NaN: none logged)."""
    out = {}
    for row in runs.to_pylist():
        if row["stage"] == stage:
            loss = row["final_val_loss"]
            out[(row["variant"], row["seed"])] = math.nan if loss is None else float(loss)
    return out


def _pick_best(
    spec: ExperimentSpec, axis: str, members: list[str], losses: dict[tuple[str, int], float]
) -> dict[str, Any]:
    """The member (one per level of ``axis``) with the lowest mean final validation loss over
    the seeds; a level whose mean is not finite is never better than one whose mean is."""
    levels = spec.variant_levels()
    means = {}
    for member in members:
        seed_losses = [losses.get((member, seed), math.nan) for seed in spec.seeds]
        means[levels[member][axis]] = float(np.mean(seed_losses))
    ranked = [math.inf if not math.isfinite(m) else m for m in means.values()]
    best = int(np.argmin(ranked))  # the first of equal means
    return {"variant": members[best], "level": list(means)[best], "mean_final_val_loss": means}


def _finite(values: SeedValues) -> SeedValues:
    return {seed: v for seed, v in values.items() if math.isfinite(v.value)}


def _estimate(
    variant: str, values: SeedValues, level: float, pick: dict[str, Any] | None
) -> dict[str, Any]:
    """Mean over seeds with its t interval (none from fewer than two seeds)."""
    kept = _finite(values)
    column = np.array([[v.value] for v in kept.values()])
    mean, low, high = math.nan, math.nan, math.nan
    if len(kept) >= 2:
        est = estimate_mean(column, level=level)
        mean, low, high = est.mean, est.low, est.high
    elif kept:
        mean = float(column[0, 0])
    return {
        "variant": variant,
        "mean": mean,
        "low": low,
        "high": high,
        "n_seeds": len(kept),
        "n_dropped": len(values) - len(kept),
        "n_censored": sum(v.censored for v in kept.values()),
        "picked": None if pick is None else pick["level"],
    }


def _comparisons(
    pairs: list[tuple[str, str]],
    values: dict[str, SeedValues],
    higher_is_better: bool,
    level: float,
) -> list[dict[str, Any]]:
    out = [
        {"variant": a, "reference": b, **_compare(values[a], values[b], higher_is_better, level)}
        for a, b in pairs
    ]
    add_holm(out)
    return out


def add_holm(family: list[dict[str, Any]]) -> None:
    """Set ``p_holm`` on each comparison of ``family``: Holm over those with a finite
    ``p_value`` (NaN for the others, which decide nothing)."""
    p_values = [row["p_value"] for row in family]
    decided = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    adjusted = holm([p_values[i] for i in decided]) if decided else []
    holm_of = dict(zip(decided, adjusted, strict=True))
    for i, row in enumerate(family):
        row["p_holm"] = float(holm_of.get(i, math.nan))


def _compare(a: SeedValues, b: SeedValues, higher_is_better: bool, level: float) -> dict[str, Any]:
    """A - B paired by seed; from fewer than two pairs no interval and an inconclusive verdict."""
    a_kept, b_kept = _finite(a), _finite(b)
    seeds = [seed for seed in a_kept if seed in b_kept]
    both = [*(a_kept[s] for s in seeds), *(b_kept[s] for s in seeds)]
    counts = {
        "n_seeds": len(seeds),
        "n_dropped": len(set(a) | set(b)) - len(seeds),
        "n_censored": sum(v.censored for v in both),
    }
    if len(seeds) < 2:
        diff = a_kept[seeds[0]].value - b_kept[seeds[0]].value if seeds else math.nan
        return {
            "diff": diff,
            "low": math.nan,
            "high": math.nan,
            "p_value": math.nan,
            "mde80": math.nan,
            "verdict": "inconclusive",
            "level": level,
            "higher_is_better": higher_is_better,
            **counts,
        }
    result = asdict(
        compare_paired(
            [[a_kept[s].value] for s in seeds],
            [[b_kept[s].value] for s in seeds],
            higher_is_better=higher_is_better,
            level=level,
        )
    )
    keep = ("diff", "low", "high", "p_value", "mde80", "verdict", "level", "higher_is_better")
    return {key: result[key] for key in keep} | counts
