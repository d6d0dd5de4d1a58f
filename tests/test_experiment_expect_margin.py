"""Expectations with a margin (not_worse: non-inferiority; same: equivalence) and against a fixed
value (a chance rate): the verdict rules on hand-made intervals, through ``analyze`` on a
hand-made results table, and the one-line errors of inconsistent expectations."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from transferlab.analysis import estimate_mean
from transferlab.experiment.analyze import analyze
from transferlab.experiment.results import ResultTables
from transferlab.experiment.spec import ExperimentSpec
from transferlab.experiment.verdicts import expectation_verdicts

TASKS_ = [{"name": "qa_score", "label": "forward"}, {"name": "qa_reverse_score", "label": "rev"}]


def _spec(expect, **fields) -> ExperimentSpec:
    data = {
        "name": "e",
        "axes": {"objective": {"clm": {}, "reverse": {}}},
        "seeds": [0, 1, 2],
        "tasks": TASKS_,
        "compare": {"baseline": "clm", "metric": "correct"},
        "expect": expect,
        **fields,
    }
    return ExperimentSpec.model_validate(data)


def _comparison(low: float, high: float, verdict: str = "inconclusive", task: str = "forward"):
    return {
        "task": task,
        "metric": "correct",
        "variant": "reverse",
        "reference": "clm",
        "diff": (low + high) / 2,
        "low": low,
        "high": high,
        "verdict": verdict,
        "level": 0.95,
        "n_seeds": 2,
        "n_examples": 10,
        "mde80": 0.1,
    }


@pytest.mark.parametrize(
    ("direction", "low", "high", "status"),
    [
        ("not_worse", -0.04, 0.10, "reproduced"),  # above -margin
        ("not_worse", -0.08, 0.10, "inconclusive"),  # reaches below -0.05
        ("not_worse", -0.20, -0.06, "not reproduced"),  # wholly below
        ("same", -0.04, 0.049, "reproduced"),  # within +-0.05
        ("same", -0.04, 0.08, "inconclusive"),
        ("same", 0.06, 0.20, "not reproduced"),  # wholly beyond +margin
        ("same", -0.30, -0.051, "not reproduced"),
    ],
)
def test_banded_directions_judge_the_interval_against_the_margin(direction, low, high, status):
    expect = {"variant": "reverse", "task": "forward", "direction": direction, "margin": 0.05}
    (verdict,) = expectation_verdicts(_spec(expect), [_comparison(low, high)], [])
    assert verdict["status"] == status
    assert (verdict["low"], verdict["high"]) == (low, high)
    wanted = "not worse by more than 0.05" if direction == "not_worse" else "the same within +-0.05"
    assert verdict["text"].endswith(f"expected {wanted}; MDE80 = 0.100: an effect smaller than "
                                    "this would be missed 20% of the time or more")  # fmt: skip


def test_not_worse_turns_round_with_the_comparison_and_a_lower_is_better_measure():
    expect = {"variant": "clm", "task": "forward", "direction": "not_worse", "margin": 0.05}
    # reverse - clm in [-0.10, +0.02]: clm - reverse in [-0.02, +0.10], above -0.05
    (verdict,) = expectation_verdicts(_spec(expect), [_comparison(-0.10, 0.02)], [])
    assert (verdict["status"], verdict["low"], verdict["high"]) == ("reproduced", -0.02, 0.10)
    measure = {
        "measure": "final_val_loss",
        "higher_is_better": False,
        "picks": {},
        "comparisons": [{**_comparison(0.01, 0.04), "n_censored": 0}],
    }
    loss = {"measure": "final_val_loss", "variant": "reverse", "reference": "clm"}
    spec = _spec(
        [{**loss, "direction": "not_worse", "margin": m} for m in (0.05, 0.03, 0.005)],
        measures=[{"name": "final_val_loss"}],
    )
    # a loss higher by 0.01 to 0.04: within a margin of 0.05, not of 0.03, beyond 0.005
    statuses = [v["status"] for v in expectation_verdicts(spec, [], [measure])]
    assert statuses == ["reproduced", "inconclusive", "not reproduced"]


def test_better_and_worse_keep_the_comparison_verdict():
    expect = [
        {"variant": "reverse", "task": "forward"},
        {"variant": "reverse", "task": "forward", "direction": "worse"},
    ]
    verdicts = expectation_verdicts(_spec(expect), [_comparison(0.01, 0.2, "better")], [])
    assert [v["status"] for v in verdicts] == ["reproduced", "not reproduced"]


def _examples(values: dict[tuple[str, str], np.ndarray]) -> pa.Table:
    """Rows of [seed, example] matrices of ``correct`` per (task, variant)."""
    rows = []
    for (task, variant), matrix in values.items():
        for seed, row in enumerate(matrix):
            for i, value in enumerate(row):
                rows.append(
                    {
                        "run_id": f"{variant}-{seed}",
                        "task": task,
                        "example_id": f"{i}:birth_date",
                        "group": "birth_date",
                        "split": "test",
                        "prediction": "",
                        "target": "",
                        "correct": float(value),
                        "variant": variant,
                        "seed": seed,
                    }
                )
    return pa.Table.from_pylist(rows)


def test_a_value_expectation_is_judged_on_the_estimate_minus_the_value():
    rng = np.random.default_rng(0)
    near_chance = (rng.random((3, 400)) < 0.125).astype(float)
    learned = (rng.random((3, 400)) < 0.6).astype(float)
    tables = ResultTables(
        _examples(
            {
                ("rev", "clm"): near_chance,
                ("rev", "reverse"): learned,
                ("forward", "clm"): learned,
                ("forward", "reverse"): learned,
            }
        ),
        pa.table({"run_id": [], "final_val_loss": []}),
    )
    chance = {"task": "rev", "value": 0.125}
    spec = _spec(
        [
            {"variant": "clm", **chance, "direction": "same", "margin": 0.1},
            {"variant": "reverse", **chance, "direction": "same", "margin": 0.1},
            {"variant": "reverse", **chance},
            {"variant": "clm", "task": "forward", "value": 0.125},
        ]
    )
    verdicts = analyze(spec, tables)["verdicts"]
    assert [v["status"] for v in verdicts] == [
        "reproduced",
        "not reproduced",
        "reproduced",
        "reproduced",
    ]
    est = estimate_mean(near_chance, bounds=(0.0, 1.0))
    first = verdicts[0]
    assert (first["diff"], first["low"], first["high"]) == pytest.approx(
        (est.mean - 0.125, est.low - 0.125, est.high - 0.125)
    )
    assert first["text"].startswith(
        f"reproduced: clm on rev (correct, higher is better): mean {est.mean:.3f} "
        f"[{est.low:.3f}, {est.high:.3f}] vs value 0.125: difference {est.mean - 0.125:+.3f}"
    )
    assert first["text"].endswith(
        "n = 3 seeds x 400 examples); expected the same within +-0.1; "
        f"MDE80 = {est.mde80:.3f}: an effect smaller than this would be missed 20% of the time "
        "or more"
    )
    assert first["mde80"] == est.mde80 > 0
    assert math.isfinite(first["value"]) and first["value"] == 0.125


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        (
            {"variant": "reverse", "direction": "same"},
            "direction 'same' is judged against a margin; give margin",
        ),
        (
            {"variant": "reverse", "direction": "not_worse", "margin": 0},
            "margin\n  Input should be greater than 0",
        ),
        (
            {"variant": "reverse", "margin": 0.05},
            "margin is the band of direction not_worse or same, not 'better'",
        ),
        (
            {"variant": "reverse", "reference": "clm", "value": 0.5},
            "value 0.5 is the other side of a task expectation; drop value, or drop reference",
        ),
    ],
)
def test_inconsistent_margins_and_values_are_refused(expect, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _spec(expect)
