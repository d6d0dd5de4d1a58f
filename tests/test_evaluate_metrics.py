"""Multiple-choice metrics on hand-made log-likelihoods, exact match, metric declarations and
the row schema."""

from __future__ import annotations

import math
import re

import pytest

from transferlab.config import IDENTITY_COLUMNS, TASKS, MetricSpec, TaskConfig
from transferlab.evaluate.metrics import choice_scores, exact_match
from transferlab.evaluate.results import ExampleResult, check_rows


def test_acc_norm_differs_from_acc_when_lengths_differ() -> None:
    # Choice 0 is likelier in total; per character choice 1 wins (-6/12 > -4/2).
    scores = choice_scores([-4.0, -6.0], gold=1, n_chars=[2, 12], n_tokens=[1, 3])
    assert scores.prediction == 0
    assert scores.correct == 0.0
    assert scores.acc_norm == 1.0


def test_probabilities_and_margin_are_exact() -> None:
    scores = choice_scores([-4.0, -6.0], gold=1, n_chars=[2, 12], n_tokens=[1, 3])
    e2 = math.exp(2.0)
    assert scores.p_correct == pytest.approx(1 / (1 + e2), abs=1e-12)
    assert scores.margin == pytest.approx((1 - e2) / (1 + e2), abs=1e-12)
    # Per token: -4/1 and -6/3 = -2, so the gold's normalized probability is 1 / (1 + e^-2).
    assert scores.norm_p_correct == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-12)


def test_margin_uses_the_best_wrong_choice() -> None:
    logprobs = [math.log(0.5), math.log(0.3), math.log(0.2)]
    scores = choice_scores(logprobs, gold=0, n_chars=[3, 3, 3], n_tokens=[1, 1, 1])
    assert scores.correct == 1.0 and scores.acc_norm == 1.0
    assert scores.p_correct == pytest.approx(0.5, abs=1e-12)
    assert scores.margin == pytest.approx(0.2, abs=1e-12)
    assert scores.norm_p_correct == pytest.approx(0.5, abs=1e-12)  # one token each: same as p


def test_margin_is_positive_exactly_when_correct() -> None:
    for gold in range(3):
        scores = choice_scores([-1.0, -2.5, -0.5], gold, n_chars=[4, 4, 4], n_tokens=[2, 2, 2])
        assert (scores.margin > 0) == bool(scores.correct)


def test_choice_scores_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="one length per choice"):
        choice_scores([-1.0, -2.0], gold=0, n_chars=[1], n_tokens=[1, 1])
    with pytest.raises(ValueError, match="at least two choices"):
        choice_scores([-1.0], gold=0, n_chars=[1], n_tokens=[1])


def test_exact_match_strips_whitespace_only() -> None:
    assert exact_match(" March 4, 1983 ", "March 4, 1983") == 1.0
    assert exact_match("March 4, 1983.", "March 4, 1983") == 0.0
    assert exact_match("march 4, 1983", "March 4, 1983") == 0.0
    assert exact_match("", "Paris") == 0.0


def test_a_row_is_the_identity_columns_then_exactly_the_declared_metrics() -> None:
    assert IDENTITY_COLUMNS == (
        "run_id",
        "task",
        "example_id",
        "group",
        "split",
        "prediction",
        "target",
    )
    row = ExampleResult(
        "r", "t", "3:major", "major", "test", "Art", "Law", {"correct": 0, "p_correct": 0.25}
    ).to_dict()
    assert row == {
        "run_id": "r",
        "task": "t",
        "example_id": "3:major",
        "group": "major",
        "split": "test",
        "prediction": "Art",
        "target": "Law",
        "correct": 0.0,
        "p_correct": 0.25,
    }
    cfg = TASKS.parse("qa_finetune")  # declares correct and p_correct
    assert check_rows(cfg, [row]) == [row]
    message = (
        "task 'qa_finetune' wrote a row missing ['p_correct'] and with undeclared ['margin']; "
        "a row holds ['run_id', 'task', 'example_id', 'group', 'split', 'prediction', "
        "'target'] and exactly the metrics QaFinetuneConfig.metrics declares"
    )
    bad = {**{k: v for k, v in row.items() if k != "p_correct"}, "margin": 0.1}
    with pytest.raises(ValueError, match=re.escape(message)):
        check_rows(cfg, [row, bad])


def test_every_task_declares_its_metrics_with_direction_and_range() -> None:
    builtin = [name for name in TASKS.names() if not name.startswith("test_")]  # not a test's
    declared = {
        name: [(m.name, m.higher_is_better, m.range) for m in TASKS.get(name).metrics]
        for name in builtin
    }
    unit, signed = (0.0, 1.0), (-1.0, 1.0)
    choice = [
        ("correct", True, unit),
        ("acc_norm", True, unit),
        ("p_correct", True, unit),
        ("margin", True, signed),
        ("norm_p_correct", True, unit),
    ]
    probe = [("correct", True, unit), ("p_correct", True, unit), ("margin", True, signed)]
    assert declared == {
        "code_function_name": choice,
        "code_likelihood": [("bits_per_byte", False, (0.0, None))],
        "code_module": probe,
        "modular_answer": probe,
        "multiple_choice": choice,
        "lm_eval": [],  # per config: from its lm-eval tasks (test_lm_eval_task)
        "qa_classify": [*probe, ("p_part", True, unit)],
        "qa_finetune": [("correct", True, unit), ("p_correct", True, unit)],
        "qa_probe": [*probe, ("p_part", True, unit)],
        "qa_reverse_finetune": [("correct", True, unit), ("p_correct", True, unit)],
        "qa_reverse_score": choice,
        "qa_score": choice,
        "sample_score": [("undesirable", False, unit), ("score", False, (0.0, None))],
        "text_finetune": probe,
        "text_likelihood": [("bits_per_byte", False, (0.0, None))],
        "text_probe": probe,
    }
    assert all(m.description for name in builtin for m in TASKS.get(name).metrics)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("seed", True, (0, 1), "x"), "metric name 'seed' must be an identifier and not one of"),
        (("a b", True, (0, 1), "x"), "metric name 'a b' must be an identifier"),
        (("loss", False, (1, 0), "x"), "metric 'loss' has range (1, 0); low must be < high"),
        (("loss", False, (0, None), ""), "metric 'loss' needs a one-line description"),
    ],
)
def test_bad_metric_declarations_are_one_line_errors(args, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MetricSpec(*args)


def test_a_task_config_declaring_a_metric_twice_is_refused() -> None:
    twice = (MetricSpec("loss", False, (0, None), "x"), MetricSpec("loss", False, (0, None), "y"))
    with pytest.raises(ValueError, match=r"Twice.metrics \['loss', 'loss'\] repeat a name"):
        type("Twice", (TaskConfig,), {"metrics": twice, "__annotations__": {}})
