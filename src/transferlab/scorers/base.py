"""The interface every scorer implements: a number for a text.

A scorer reads one text (a generated sample, a training segment) and returns a float. Scorers of
undesirable content count what they find (0: none), so "undesirable" is ``score > threshold``
wherever a threshold applies (the ``conditional`` objective's control tokens, a sampling task's
``undesirable`` column). A scorer holds no model and no random state: the same text always gets
the same score, in any process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from transferlab.config.base import ComponentConfig


class Scorer(ABC):
    """Scores texts; ``score_batch`` exists so a scorer can batch (the default loops)."""

    @abstractmethod
    def score(self, text: str) -> float:
        """The score of ``text`` (for content scorers: how much of it was found)."""

    def score_batch(self, texts: Sequence[str]) -> list[float]:
        return [self.score(text) for text in texts]


class ScorerConfig(ComponentConfig):
    """The config of a scorer; ``build()`` gives a ``Scorer``."""

    def uses_world(self) -> bool:
        """Whether ``build`` needs the world (to check its ground truth). Default: no."""
        return False

    def build(self, world: Any = None) -> Scorer:
        """The scorer. ``world``: the world whose models' texts it judges, for a scorer that
        checks that world's ground truth (``pii`` with ``match: known``); others ignore it."""
        raise NotImplementedError
