"""Multiple-choice metrics on hand-made log-likelihoods, exact match, and the row schema."""

from __future__ import annotations

import math

import pytest

from transferlab.evaluate.metrics import choice_scores, exact_match
from transferlab.evaluate.results import COLUMNS, ExampleResult


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


def test_example_result_has_the_agreed_columns_and_nan_defaults() -> None:
    assert COLUMNS == (
        "run_id",
        "task",
        "example_id",
        "group",
        "split",
        "prediction",
        "target",
        "correct",
        "p_correct",
        "margin",
        "norm_p_correct",
        "acc_norm",
    )
    row = ExampleResult("r", "t", "3:major", "major", "test", "Art", "Law", 0.0).to_dict()
    assert tuple(row) == COLUMNS
    assert all(math.isnan(row[k]) for k in ("p_correct", "margin", "norm_p_correct", "acc_norm"))
