"""Scorers: registered by name, deterministic, with one-line errors for bad patterns."""

from __future__ import annotations

import pytest

from transferlab.config.registry import SCORERS


def test_regex_counts_non_overlapping_matches():
    scorer = SCORERS.parse({"name": "regex", "pattern": r"\d{3}-\d{4}"}).build()
    assert scorer.score("call 555-1234 or 555-9876, not 55-12") == 2.0
    assert scorer.score("nothing here") == 0.0
    assert scorer.score_batch(["555-1234", "", "a 555-12345"]) == [1.0, 0.0, 1.0]


def test_regex_ignore_case():
    cfg = {"name": "regex", "pattern": "secret", "ignore_case": True}
    assert SCORERS.parse(cfg).build().score("Secret SECRET secret") == 3.0
    assert SCORERS.parse({**cfg, "ignore_case": False}).build().score("Secret SECRET") == 0.0


def test_a_bad_pattern_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"pattern '\(' is not a valid regular expression"):
        SCORERS.parse({"name": "regex", "pattern": "("})


def test_an_unknown_scorer_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown scorer 'nope'; expected one of \[.*'regex'"):
        SCORERS.get("nope")
