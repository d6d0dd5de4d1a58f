"""Corpus statistics: tokens per domain, length histograms and duplicate rates, streamed.

A domain is a document's source name. Lengths count whitespace-separated words, or a
tokenizer's tokens when one is given (``CorpusStats.unit`` says which; the fields keep the name
``tokens`` for both). Lengths are bucketed by powers of two (bucket ``b`` holds documents
of ``b`` to ``2b - 1`` tokens; bucket 0 the empty ones). A document is an exact duplicate when
its normalized text repeats an earlier document's (in any domain), and a near duplicate when,
not being an exact one, its MinHash signature matches an earlier kept document's; the count goes
to the domain of the repeat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from transferlab.curation.dedup import ExactDeduplicator, MinHashConfig, NearDuplicateDetector
from transferlab.curation.documents import count_tokens
from transferlab.data.sources import TextDocument
from transferlab.data.tokenizer import TextTokenizer


def length_bucket(tokens: int) -> int:
    """The power-of-two bucket of a length: the largest power of two <= ``tokens`` (0 for 0)."""
    return 0 if tokens <= 0 else 1 << (tokens.bit_length() - 1)


def bucket_label(bucket: int) -> str:
    return str(bucket) if bucket <= 1 else f"{bucket}-{2 * bucket - 1}"


@dataclass
class DomainStats:
    documents: int = 0
    tokens: int = 0
    chars: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    length_histogram: dict[int, int] = field(default_factory=dict)  # bucket -> documents

    def add(self, tokens: int, chars: int, duplicate: str | None) -> None:
        self.documents += 1
        self.tokens += tokens
        self.chars += chars
        self.exact_duplicates += duplicate == "exact"
        self.near_duplicates += duplicate == "near"
        bucket = length_bucket(tokens)
        self.length_histogram[bucket] = self.length_histogram.get(bucket, 0) + 1

    @property
    def exact_duplicate_rate(self) -> float:
        return self.exact_duplicates / self.documents if self.documents else 0.0

    @property
    def near_duplicate_rate(self) -> float:
        return self.near_duplicates / self.documents if self.documents else 0.0

    @property
    def mean_tokens(self) -> float:
        return self.tokens / self.documents if self.documents else 0.0


@dataclass
class CorpusStats:
    """Per-domain statistics (domains sorted by name) and their total; ``near_duplicates``
    says whether near duplicates were looked for, ``unit`` what the lengths count."""

    domains: dict[str, DomainStats]
    total: DomainStats
    near_duplicates: bool
    unit: str = "words"  # or "tokens": a tokenizer's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stats(
    documents: Iterable[TextDocument],
    minhash: MinHashConfig | None = None,
    tokenizer: TextTokenizer | None = None,
) -> CorpusStats:
    """Statistics of ``documents`` in one pass; near duplicates only when ``minhash`` is given."""
    exact = ExactDeduplicator()
    near = NearDuplicateDetector(minhash) if minhash is not None else None
    domains: dict[str, DomainStats] = {}
    total = DomainStats()
    for doc in documents:
        kind = None
        if exact.check(doc) is not None:
            kind = "exact"
        elif near is not None and near.check(doc) is not None:
            kind = "near"
        tokens = len(tokenizer.encode(doc.text)) if tokenizer else count_tokens(doc.text)
        domains.setdefault(doc.source, DomainStats()).add(tokens, len(doc.text), kind)
        total.add(tokens, len(doc.text), kind)
    for domain in (*domains.values(), total):
        domain.length_histogram = dict(sorted(domain.length_histogram.items()))
    unit = "tokens" if tokenizer else "words"
    return CorpusStats(dict(sorted(domains.items())), total, near is not None, unit)
