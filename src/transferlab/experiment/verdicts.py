"""The experiment's verdicts: one per stated expectation, reproduced / not reproduced /
inconclusive, read from the comparison it names (of a task on the primary metric, or of a
measure). The expectation's ``variant`` may sit on either side of that comparison; the
difference is then turned round so it always reads variant minus the other side. Each verdict
states the comparison's minimum detectable effect at 80% power (``mde80``, a size either way),
so an inconclusive one says how large an effect it could have missed; a ``value`` expectation
states its estimate's (the smallest departure from the value it would detect). Each verdict
also carries the interval's ``level`` and its n (``n_seeds``, and ``n_examples`` for a task).

``not_worse`` (non-inferiority) and ``same`` (equivalence) are judged on the interval against the
expectation's ``margin``: not worse is reproduced when the whole interval lies above ``-margin``
on the better side (not reproduced when it lies wholly below), same when it lies within
``[-margin, +margin]`` (not reproduced when it lies wholly outside). An expectation with a fixed
``value`` (a chance rate) is judged on the variant's estimated mean minus that value, with the
estimate's interval (``summary["estimates"]``), by the same rules. A ``decision`` expectation is
judged on the size ladder's decision accuracy (``decision_verdict``)."""

from __future__ import annotations

import math
from typing import Any

from transferlab.experiment.spec import ExpectSpec, ExperimentSpec

NO_EXPECTATION = {"status": "none", "text": "no expectation stated; see the comparisons"}

Row = dict[str, Any]


def expectation_verdicts(
    spec: ExperimentSpec,
    comparisons: list[Row],
    measures: list[Row],
    estimates: list[Row] | None = None,
    decisions: Row | None = None,
) -> list[Row]:
    """A verdict per expectation, in the spec's order, each with its ``claim``; ``comparisons``
    are the tasks' (summary["comparisons"]), ``measures`` the measures' summaries,
    ``estimates`` the tasks' per-variant means (summary["estimates"], what a ``value``
    expectation is judged on), ``decisions`` the size ladder's (summary["decisions"], what a
    ``decision`` expectation is judged on)."""
    out = []
    for expect in spec.expectations:
        if expect.decision is not None:
            verdict = decision_verdict(spec, expect, decisions or {})
        elif expect.measure is None and expect.value is not None:
            verdict = value_verdict(spec, expect, estimates or [])
        elif expect.measure is None:
            verdict = task_verdict(spec, expect, comparisons)
        else:
            summary = next(m for m in measures if m["measure"] == expect.measure)
            verdict = measure_verdict(expect, summary)
        out.append({**verdict, "claim": expect.claim})
    return out


def task_verdict(spec: ExperimentSpec, expect: ExpectSpec, comparisons: list[Row]) -> Row:
    """The verdict on a task expectation, from its task's comparison on its metric (default:
    the primary one)."""
    task, metric = spec.expectation_task(expect), spec.expectation_metric(expect)
    if task is None:
        return {"status": "inconclusive", "text": "inconclusive: the experiment has no task"}
    declared = spec.task(task).metric(metric)
    rows = [c for c in comparisons if c["task"] == task and c["metric"] == metric]
    found = _comparison_of(expect, rows)
    if found is None:
        return {
            "status": "inconclusive",
            "text": f"inconclusive: no comparison of {expect.variant} on {task} ({metric})",
        }
    comp, sign, other = found
    status, diff, low, high = _judged(expect, comp, sign, declared.higher_is_better)
    text = (
        f"{status}: {expect.variant} vs {other} on {task} ({metric}, {declared.direction}): "
        f"difference {diff:+.3f} [{low:+.3f}, {high:+.3f}] "
        f"({comp['level'] * 100:.4g}% interval; n = {comp['n_seeds']} seeds x "
        f"{comp['n_examples']} examples); expected {_expected(expect)}"
        f"{_mde_note(comp['mde80'], '.3f')}"
    )
    return {
        "status": status,
        "text": text,
        "task": task,
        "metric": metric,
        "variant": expect.variant,
        "reference": other,
        "diff": diff,
        "low": low,
        "high": high,
        "mde80": comp["mde80"],
        "expected": expect.direction,
        "level": comp["level"],
        "n_seeds": comp["n_seeds"],
        "n_examples": comp["n_examples"],
    }


def value_verdict(spec: ExperimentSpec, expect: ExpectSpec, estimates: list[Row]) -> Row:
    """The verdict on a task expectation against a fixed ``value``: the variant's mean on the
    primary metric minus the value, with the estimate's interval."""
    task, metric, value = (
        spec.expectation_task(expect),
        spec.expectation_metric(expect),
        expect.value,
    )
    found = [
        e
        for e in estimates
        if (e["task"], e["metric"], e["variant"]) == (task, metric, expect.variant)
    ]
    if task is None or not found:
        return {
            "status": "inconclusive",
            "text": f"inconclusive: no estimate of {expect.variant} on {task} ({metric})",
        }
    (est,) = found
    declared = spec.task(task).metric(metric)
    diff, low, high = est["mean"] - value, est["low"] - value, est["high"] - value
    # compare.min_effect is in the primary metric's units, so it bands that metric only
    min_effect = spec.compare.min_effect if metric == spec.primary_metric else 0.0
    status = _interval_status(expect, low, high, declared.higher_is_better, min_effect)
    text = (
        f"{status}: {expect.variant} on {task} ({metric}, {declared.direction}): mean "
        f"{est['mean']:.3f} [{est['low']:.3f}, {est['high']:.3f}] vs value {value:.3f}: "
        f"difference {diff:+.3f} [{low:+.3f}, {high:+.3f}] ({est['level']:.0%} interval; "
        f"n = {est['n_seeds']} seeds x {est['n_examples']} examples); "
        f"expected {_expected(expect)}{_mde_note(est['mde80'], '.3f')}"
    )
    return {
        "status": status,
        "text": text,
        "task": task,
        "metric": metric,
        "variant": expect.variant,
        "value": value,
        "diff": diff,
        "low": low,
        "high": high,
        "mde80": est["mde80"],
        "expected": expect.direction,
        "margin": expect.margin,
        "level": est["level"],
        "n_seeds": est["n_seeds"],
        "n_examples": est["n_examples"],
    }


def decision_verdict(spec: ExperimentSpec, expect: ExpectSpec, decisions: Row) -> Row:
    """The verdict on a ``decision`` expectation, from its interval: ``better``, on decision
    accuracy by ``metric`` minus by ``than`` (at ``size``, or the mean over the smaller sizes),
    reproduced when the interval lies above 0 and not reproduced when below; ``above_chance``,
    on the decision accuracy of ``size`` (default: the smallest) against chance (1/2),
    reproduced when the interval lies above it and not reproduced when below."""
    task, metric = spec.expectation_task(expect), spec.expectation_metric(expect)
    better = expect.decision == "better"
    size = expect.size if better else expect.size or spec.size_names()[0]
    wanted = {
        "task": task,
        "metric": metric,
        "size": size,
        **({"than": expect.than} if better else {}),
    }
    rows = decisions.get("differences" if better else "accuracy", [])
    found = next((r for r in rows if all(r.get(k) == v for k, v in wanted.items())), None)
    if found is None:
        where = f"{task} ({metric}{f' vs {expect.than}' if better else ''})"
        return {"status": "inconclusive", "text": f"inconclusive: no decision accuracy of {where}"}
    reference = 0.0 if better else decisions["chance"]
    value, low, high = found["diff" if better else "accuracy"], found["low"], found["high"]
    above, below = low > reference, high < reference
    status = "reproduced" if above else "not reproduced" if below else "inconclusive"
    return {
        "status": status,
        "text": f"{status}: {_decision_text(spec, expect, decisions, found, value, size)}",
        "decision": expect.decision,
        "task": task,
        "metric": metric,
        "than": expect.than,
        "size": size,
        "estimate": value,  # the difference (better) or the decision accuracy (above_chance)
        # The effect as other verdicts state it (the scoreboard's column): the value minus what
        # it is judged against (0 or chance), with its interval.
        "diff": value - reference,
        "low": low - reference,
        "high": high - reference,
        "level": found["level"],
        "n_seeds": _first_accuracy(decisions, task)["n_seeds"],
    }


def _decision_text(
    spec: ExperimentSpec,
    expect: ExpectSpec,
    decisions: Row,
    found: Row,
    value: float,
    size: str | None,
) -> str:
    """What a decision verdict judged, its value with interval and n, and what was expected."""
    task, metric = spec.expectation_task(expect), spec.expectation_metric(expect)
    if expect.decision == "better":
        at = f"size {size}" if size else "the mean over the smaller sizes"
        claim = f"decision accuracy by {metric} minus by {expect.than} at {at}"
        shown, expected = "+.3f", "above 0"  # a difference, signed
    else:
        claim = f"decision accuracy of size {size} by {metric}"
        shown, expected = ".3f", f"above chance {decisions['chance']:g}"
    interval = f"{value:{shown}} [{found['low']:{shown}}, {found['high']:{shown}}]"
    return (
        f"{claim} on {task}, against the order at {spec.largest_size} by "
        f"{_first_accuracy(decisions, task)['target_metric']}: {interval} "
        f"({found['level']:.0%} seed-bootstrap interval, {found['resamples']} resamples; "
        f"{_decision_n(decisions, task)}); expected {expected}"
    )


def _first_accuracy(decisions: Row, task: str | None) -> Row:
    return next(r for r in decisions["accuracy"] if r["task"] == task)


def _decision_n(decisions: Row, task: str | None) -> str:
    """``n = 4 variants (6 pairs) x 3 seeds per size``, from ``task``'s first accuracy row."""
    row = _first_accuracy(decisions, task)
    return (
        f"n = {row['n_variants']} variants ({row['n_pairs']} pairs) x {row['n_seeds']} seeds "
        f"per smaller size, {row['n_target_seeds']} at the largest"
    )


def measure_verdict(expect: ExpectSpec, measure: Row) -> Row:
    """The verdict on a measure expectation, from the measure's comparison over seeds; the text
    names censored runs and the levels ``pick: best`` chose, which qualify it."""
    label = measure["measure"]
    found = _comparison_of(expect, measure["comparisons"])
    if found is None:
        return {
            "status": "inconclusive",
            "text": f"inconclusive: no comparison of {expect.variant} on measure {label}",
            "measure": label,
        }
    comp, sign, other = found
    status, diff, low, high = _judged(expect, comp, sign, measure["higher_is_better"])
    better = "higher is better" if measure["higher_is_better"] else "lower is better"
    n = f"{comp['n_seeds']} seed{'' if comp['n_seeds'] == 1 else 's'}"
    if math.isfinite(low) and math.isfinite(high):
        evidence = f"[{low:+.4g}, {high:+.4g}] ({comp['level'] * 100:.4g}% interval; n = {n})"
    else:
        evidence = f"(no interval from n = {n})"
    text = (
        f"{status}: {expect.variant} vs {other} on {label} ({better}): difference {diff:+.4g} "
        f"{evidence}{_qualifiers(measure, comp, [expect.variant, other])}; "
        f"expected {_expected(expect)}{_mde_note(comp['mde80'], '.4g')}"
    )
    return {
        "status": status,
        "text": text,
        "measure": label,
        "variant": expect.variant,
        "reference": other,
        "diff": diff,
        "low": low,
        "high": high,
        "mde80": comp["mde80"],
        "expected": expect.direction,
        "level": comp["level"],
        "n_seeds": comp["n_seeds"],
    }


def _mde_note(mde80: float, spec: str) -> str:
    """``; MDE80 = 0.071: an effect smaller than ...`` in ``spec``'s format; empty when the
    comparison has none (a measure compared on fewer than two seeds)."""
    if not math.isfinite(mde80):
        return ""
    return (
        f"; MDE80 = {mde80:{spec}}: an effect smaller than this would be missed 20% of the time "
        "or more"
    )


def _qualifiers(measure: Row, comp: Row, variants: list[str]) -> str:
    notes = []
    if comp["n_seeds"] >= 2 and comp["low"] == comp["high"]:
        # A deterministic quantity (a size in bytes) differs by the same amount on every seed.
        notes.append("the same difference on every seed, so the interval has zero width")
    if comp["n_censored"]:
        notes.append(
            f"{comp['n_censored']} censored run(s), counted at their budget, which pulls the "
            "difference toward 0"
        )
    picks = measure["picks"]
    if picks:
        chosen = ", ".join(f"{v} at {picks[v]['level']}" for v in variants)
        notes.append(
            f"{measure['over']} picked by best mean final val loss on the same seeds: {chosen}"
        )
    return "".join(f"; {note}" for note in notes)


def _comparison_of(expect: ExpectSpec, rows: list[Row]) -> tuple[Row, int, str] | None:
    """The first comparison with ``expect.variant`` on one side (and ``expect.reference`` on
    the other, when given), the sign that orients it as variant minus other, and the other."""
    for comp in rows:
        if expect.variant not in (comp["variant"], comp["reference"]):
            continue
        sign = 1 if comp["variant"] == expect.variant else -1
        other = comp["reference"] if sign > 0 else comp["variant"]
        if expect.reference in (None, other):
            return comp, sign, other
    return None


def _judged(
    expect: ExpectSpec, comp: Row, sign: int, higher_is_better: bool
) -> tuple[str, float, float, float]:
    """Status, and the difference with its interval as variant minus other."""
    diff, low, high = (sign * comp["diff"], *sorted((sign * comp["low"], sign * comp["high"])))
    if expect.direction in ("not_worse", "same"):
        return _interval_status(expect, low, high, higher_is_better, 0.0), diff, low, high
    observed = comp["verdict"]
    if sign < 0 and observed != "inconclusive":
        observed = "worse" if observed == "better" else "better"
    if observed == "inconclusive":
        status = "inconclusive"
    else:
        status = "reproduced" if observed == expect.direction else "not reproduced"
    return status, diff, low, high


def _interval_status(
    expect: ExpectSpec, low: float, high: float, higher_is_better: bool, band: float
) -> str:
    """The status of ``expect`` from the interval [low, high] of variant minus the other side:
    better / worse beyond ``band`` (as ``analysis.comparisons.verdict``), not_worse and same
    against the expectation's margin (see the module docstring)."""
    if expect.direction == "same":
        margin = expect.margin or 0.0
        if -margin <= low and high <= margin:
            return "reproduced"
        return "not reproduced" if low > margin or high < -margin else "inconclusive"
    # The interval of the gain: positive is better whatever the metric's direction.
    gain_low, gain_high = (low, high) if higher_is_better else (-high, -low)
    if expect.direction == "not_worse":
        margin = expect.margin or 0.0
        if gain_low > -margin:
            return "reproduced"
        return "not reproduced" if gain_high < -margin else "inconclusive"
    observed = "better" if gain_low > band else "worse" if gain_high < -band else None
    if observed is None:
        return "inconclusive"
    return "reproduced" if observed == expect.direction else "not reproduced"


def _expected(expect: ExpectSpec) -> str:
    """What the text says was expected: the direction, with the margin of a banded one."""
    if expect.direction == "not_worse":
        return f"not worse by more than {expect.margin:g}"
    if expect.direction == "same":
        return f"the same within +-{expect.margin:g}"
    return expect.direction
