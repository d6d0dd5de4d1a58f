"""What the model-based filters share: documents scored in batches, then a selection on the
scores that changes without rescoring."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Selection:
    """Which scored documents are kept, a label per document (the perplexity bucket, or
    ``pass``/``fail`` of the classifier) and the thresholds used, for the statistics."""

    keep: np.ndarray  # bool, one per document
    labels: list[str]
    details: dict[str, Any] = field(default_factory=dict)


class ScoreFilter(Protocol):
    """A filter on a per-document score: ``name`` is its stage name, ``score_key()`` hashes what
    the scores depend on (never the thresholds); kept documents get their score in metadata
    ``metadata_key`` and, unless ``label_key`` is None, their label in ``label_key``."""

    name: str
    metadata_key: str
    label_key: str | None

    def score_key(self) -> str: ...

    def score_texts(self, texts: list[str]) -> list[float]: ...

    def select(self, scores: np.ndarray) -> Selection: ...


def rank_positions(scores: np.ndarray) -> np.ndarray:
    """Each score's rank from 0 (lowest) to n-1, ties broken by document order, so a band of
    percentiles keeps an exact number of documents."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(len(scores))
    return ranks
