"""Task expectations judged on a metric of their own (``expect.metric``): one experiment judges
a rate on one task and an accuracy on another (conditional training: undesirable samples and QA
at the same time), on hand-made comparisons."""

from __future__ import annotations

import re

import pytest

from transferlab.config import ConfigError, validate
from transferlab.experiment import ExperimentSpec
from transferlab.experiment.verdicts import expectation_verdicts

AXES = {"objective": {"plain": {}, "conditional": {}}}
TASKS = [{"name": "qa_score"}]


def _spec(expect, **fields) -> ExperimentSpec:
    data = {"name": "s", "axes": AXES, "seeds": [0, 1], "expect": expect, "tasks": TASKS}
    return validate(ExperimentSpec, {**data, **fields})


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


def test_each_task_expectation_reads_the_comparison_of_its_own_metric():
    """The first expectation reads compare.metric (correct), the second p_correct; a comparison
    stored as plain minus conditional is turned round (variant minus reference)."""
    spec = _spec(
        [
            {"variant": "conditional", "direction": "better"},
            {"variant": "conditional", "metric": "p_correct", "direction": "same", "margin": 0.05},
        ],  # fmt: skip
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
    assert "on qa_score (p_correct, higher is better)" in second["text"]


def test_a_value_expectation_reads_the_estimate_of_its_metric():
    spec = _spec({"variant": "conditional", "metric": "p_correct", "value": 0.25})
    estimates = [
        {"task": "qa_score", "metric": metric, "variant": "conditional", "mean": mean,
         "low": mean - 0.05, "high": mean + 0.05, "level": 0.95, "n_seeds": 2,
         "n_examples": 50, "mde80": 0.07}
        for metric, mean in (("correct", 0.1), ("p_correct", 0.4))
    ]  # fmt: skip
    (verdict,) = expectation_verdicts(spec, [], [], estimates)
    assert (verdict["status"], verdict["metric"]) == ("reproduced", "p_correct")
    assert verdict["diff"] == pytest.approx(0.15)
    # the MDE80 of the estimate it read, in the verdict and its text, with the n behind it
    assert (verdict["mde80"], verdict["n_seeds"], verdict["n_examples"]) == (0.07, 2, 50)
    assert verdict["text"].endswith("; MDE80 = 0.070: an effect smaller than this would be "
                                    "missed 20% of the time or more")  # fmt: skip


@pytest.mark.parametrize(
    ("expect", "message"),
    [
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
def test_a_metric_that_cannot_be_judged_fails_in_one_line(expect, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _spec(expect, measures=[{"name": "final_val_loss"}])
