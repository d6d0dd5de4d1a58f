"""``regex``: the number of non-overlapping matches of a regular expression in the text."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from transferlab.config.registry import SCORERS
from transferlab.scorers.base import Scorer, ScorerConfig


class RegexScorer(Scorer):
    def __init__(self, pattern: str, ignore_case: bool) -> None:
        self.pattern = re.compile(pattern, re.IGNORECASE if ignore_case else 0)

    def score(self, text: str) -> float:
        return float(sum(1 for _ in self.pattern.finditer(text)))


@SCORERS.register("regex")
class RegexScorerConfig(ScorerConfig):
    """Counts the matches of ``pattern`` (Python ``re`` syntax) in a text."""

    name: Literal["regex"] = "regex"
    pattern: str = Field(min_length=1)  # what to count, e.g. '\\d{3}-\\d{4}'
    ignore_case: bool = False  # match regardless of case

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from None
        return pattern

    def build(self, world: Any = None) -> RegexScorer:
        return RegexScorer(self.pattern, self.ignore_case)
