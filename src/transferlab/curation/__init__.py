"""Data curation: datatrove's heuristic filters, exact and MinHash deduplication, and filters
scored by models transferlab trains itself (a reference LM's perplexity, a quality classifier),
with per-stage statistics and score side files. See ``pipeline`` for the flow.

Filters are registered in ``FILTERS`` by name (``gopher_quality``, ``gopher_repetition``,
``c4_quality``, ``fineweb_quality``, and ``language``, which identifies and tags languages). ``CurationConfig(...).run(documents, out_dir)`` curates a
stream of ``TextDocument``s; ``inspect(out_dir)`` reads what a run removed; ``stats(documents)``
counts tokens, lengths and duplicates per domain; ``print_report`` / ``print_stats`` show them.
"""

from transferlab.curation.classifier import QualityClassifier, QualityClassifierConfig
from transferlab.curation.corpus_stats import CorpusStats, DomainStats, stats
from transferlab.curation.dedup import (
    DedupConfig,
    ExactDeduplicator,
    MinHashConfig,
    NearDuplicateDetector,
    normalize_text,
)
from transferlab.curation.display import print_report, print_stats
from transferlab.curation.documents import DocumentWriter, read_documents
from transferlab.curation.heuristics import (
    FILTERS,
    C4QualityConfig,
    FilterConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    HeuristicFilter,
    HeuristicFilterConfig,
)
from transferlab.curation.language import LanguageFilter, LanguageFilterConfig
from transferlab.curation.perplexity import PerplexityConfig, PerplexityFilter
from transferlab.curation.pipeline import CurationConfig, CurationResult, curate
from transferlab.curation.reference import ReferenceModelConfig, load_reference_model
from transferlab.curation.report import CurationReport, RemovedSample, StageStats, Tally, inspect

__all__ = [
    "FILTERS",
    "C4QualityConfig",
    "CorpusStats",
    "CurationConfig",
    "CurationReport",
    "CurationResult",
    "DedupConfig",
    "DocumentWriter",
    "DomainStats",
    "ExactDeduplicator",
    "FilterConfig",
    "FineWebQualityConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "HeuristicFilter",
    "HeuristicFilterConfig",
    "LanguageFilter",
    "LanguageFilterConfig",
    "MinHashConfig",
    "NearDuplicateDetector",
    "PerplexityConfig",
    "PerplexityFilter",
    "QualityClassifier",
    "QualityClassifierConfig",
    "ReferenceModelConfig",
    "RemovedSample",
    "StageStats",
    "Tally",
    "curate",
    "inspect",
    "load_reference_model",
    "normalize_text",
    "print_report",
    "print_stats",
    "read_documents",
    "stats",
]
