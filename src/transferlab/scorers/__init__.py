"""Scorers of text, one module each, registered in ``SCORERS`` by name."""

from transferlab.scorers import regex
from transferlab.scorers.base import Scorer, ScorerConfig
from transferlab.scorers.regex import RegexScorerConfig

__all__ = ["RegexScorerConfig", "Scorer", "ScorerConfig", "regex"]
