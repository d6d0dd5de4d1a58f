"""Expectations of similarity (``direction: similar`` within ``margin``) and task expectations
judged on a metric of their own (``expect.metric``), on hand-made comparisons."""

from __future__ import annotations

import math
import re

import pytest

from transferlab.config import ConfigError, validate
from transferlab.experiment import ExperimentSpec
from transferlab.experiment.verdicts import expectation_verdicts

AXES = {"objective": {"plain": {}, "conditional": {}}}


def _spec(expect, **fields) -> ExperimentSpec:
    data = {"name": "s", "axes": AXES, "seeds": [0, 1], "expect": expect, **fields}
    return validate(ExperimentSpec, data)


def _comparison(metric: str, diff: float, low: float, high: float, **fields) -> dict:
    """A row as summary["comparisons"] holds it: conditional minus plain on ``metric``."""
    return {
        "task": "qa_score",
        "metric": metric,
        "variant": "conditional",
        "reference": "plain",
        "diff": diff,
        "low": low,
        "high": high,
        "level": 0.95,
        "n_seeds": 2,
        "n_examples": 50,
        "mde80": 0.04,
        "verdict": "better" if low > 0 else "worse" if high < 0 else "inconclusive",
        **fields,
    }


def _measure(diff: float, low: float, high: float) -> dict:
    comparison = {k: v for k, v in _comparison("-", diff, low, high).items() if k != "task"}
    return {
        "measure": "final_val_loss",
        "higher_is_better": False,
        "picks": {},
        "over": None,
        "comparisons": [{**comparison, "n_censored": 0}],
    }


@pytest.mark.parametrize(
    ("interval", "status"),
    [
        ((-0.03, 0.04), "reproduced"),  # wholly within +-0.05
        ((-0.03, 0.08), "inconclusive"),  # reaches past +0.05
        ((0.06, 0.09), "not reproduced"),  # wholly beyond it
        ((-0.2, -0.06), "not reproduced"),
        ((float("nan"), float("nan")), "inconclusive"),  # one seed: no interval
    ],
)
def test_similar_is_reproduced_only_when_the_whole_interval_lies_within_the_margin(
    interval, status
):
    expect = {"measure": "final_val_loss", "variant": "conditional", "reference": "plain"}
    spec = _spec(
        {**expect, "direction": "similar", "margin": 0.05}, measures=[{"name": "final_val_loss"}]
    )
    low, high = interval
    diff = (low + high) / 2 if math.isfinite(low) else 0.01
    (verdict,) = expectation_verdicts(spec, [], [_measure(diff, low, high)])
    assert verdict["status"] == status
    assert "expected similar (within +-0.05)" in verdict["text"]


def test_a_task_expectation_is_judged_on_its_own_metric_and_the_reference_side_turns_round():
    """The first expectation reads compare.metric (correct), the second p_correct; a comparison
    stored as plain minus conditional is turned round (variant minus reference)."""
    spec = _spec(
        [
            {"variant": "conditional", "direction": "better"},
            {
                "variant": "conditional",
                "metric": "p_correct",
                "direction": "similar",
                "margin": 0.05,
            },
        ],  # fmt: skip
        tasks=[{"name": "qa_score"}],
        compare={"metric": "correct"},
    )
    flipped = {"variant": "plain", "reference": "conditional"}
    comparisons = [
        _comparison("correct", 0.2, 0.1, 0.3),
        _comparison("p_correct", -0.01, -0.04, 0.02, **flipped),
    ]
    first, second = expectation_verdicts(spec, comparisons, [])
    assert (first["status"], first["metric"], first["diff"]) == ("reproduced", "correct", 0.2)
    assert (second["status"], second["metric"]) == ("reproduced", "p_correct")
    assert (second["diff"], second["low"], second["high"]) == (0.01, -0.02, 0.04)


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        (
            {"variant": "conditional", "direction": "similar"},
            "direction 'similar' needs a margin (the largest difference that counts as "
            "similar) and a margin needs direction 'similar'; set both or neither",
        ),
        (
            {"variant": "conditional", "margin": 0.1},
            "a margin needs direction 'similar'",
        ),
        (
            {"variant": "conditional", "metric": "correct", "measure": "final_val_loss"},
            "names metric 'correct' with measure 'final_val_loss'; a metric belongs to a task, "
            "so drop it or name the task instead",
        ),
        (
            {"variant": "conditional", "metric": "bits_per_byte"},
            "expect.task 'qa_score' does not declare expect.metric 'bits_per_byte' (it declares "
            "['correct', 'acc_norm', 'p_correct', 'margin', 'norm_p_correct']); the verdict "
            "needs that comparison, so set expect.metric to one of them",
        ),
    ],
)
def test_inconsistent_similarity_and_metric_fields_fail_in_one_line(expect, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _spec(expect, tasks=[{"name": "qa_score"}], measures=[{"name": "final_val_loss"}])
