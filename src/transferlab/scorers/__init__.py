"""Scorers of text, one module each, registered in ``SCORERS`` by name."""

from transferlab.scorers import pii, regex
from transferlab.scorers.base import Scorer, ScorerConfig
from transferlab.scorers.pii import PiiScorerConfig
from transferlab.scorers.regex import RegexScorerConfig

__all__ = ["PiiScorerConfig", "RegexScorerConfig", "Scorer", "ScorerConfig", "pii", "regex"]
