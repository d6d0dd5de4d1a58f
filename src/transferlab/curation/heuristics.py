"""Heuristic quality filters from datatrove, with their thresholds as typed configs.

Each config (registered in ``FILTERS``) mirrors the constructor of one datatrove filter, with
datatrove's defaults, and ``build()`` makes a ``HeuristicFilter`` that runs it in this process:
datatrove filters are plain objects whose ``filter(doc)`` returns True (keep), False or
``(False, reason)``, so no pipeline executor (and none of its worker processes) is needed, and
the order of documents is ours. English words and sentences are split by datatrove's word
tokenizer, a blank spaCy English pipeline: nothing is downloaded.

``C4QualityFilter`` also edits a document it keeps (it drops lines without terminal punctuation,
with too few words, ...); a ``HeuristicFilter`` returns the edited text, as datatrove passes it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from transferlab.config.base import ComponentConfig
from transferlab.config.registry import FILTERS
from transferlab.data.sources import TextDocument

Ratio = Annotated[float, Field(ge=0, le=1)]
EMPTIED = "empty_after_filter"  # a document the filter kept but left without text


@dataclass(frozen=True)
class FilterOutcome:
    """What a filter made of one document: kept or not, datatrove's reason for removing it (the
    filter's name when datatrove gives none) and the text passed on (edited by C4)."""

    kept: bool
    reason: str | None
    text: str


class HeuristicFilterConfig(ComponentConfig):
    """A datatrove heuristic filter; ``label`` names it in statistics (default: its kind), so
    one kind can appear twice with different thresholds."""

    label: str | None = Field(default=None, min_length=1)

    @property
    def stage_name(self) -> str:
        return self.label or self.name

    def datatrove_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of the datatrove filter: every field but name and label."""
        return self.model_dump(exclude={"name", "label"})

    def make_filter(self) -> Any:
        raise NotImplementedError

    def build(self) -> HeuristicFilter:
        return HeuristicFilter(self.stage_name, self.make_filter())


class HeuristicFilter:
    """A datatrove filter applied to ``TextDocument``s one at a time."""

    def __init__(self, name: str, datatrove_filter: Any) -> None:
        self.name = name
        self._filter = datatrove_filter

    def __call__(self, doc: TextDocument) -> FilterOutcome:
        from datatrove.data import Document

        candidate = Document(text=doc.text, id=doc.id, metadata=dict(doc.metadata))
        try:
            result = self._filter.filter(candidate)
        except ZeroDivisionError:
            # Ratios over zero words or lines, reachable only when a count check is disabled
            # (min_doc_words: null, ...): such a document has nothing to judge.
            return FilterOutcome(False, f"{self.name}_no_words", doc.text)
        kept, reason = result if isinstance(result, tuple) else (result, None)
        if not kept:
            return FilterOutcome(False, reason or self.name, doc.text)
        if not candidate.text.strip():
            return FilterOutcome(False, EMPTIED, doc.text)
        return FilterOutcome(True, None, candidate.text)


# A filter given as a name or a mapping with ``name``, validated against the registered class.
FilterField = FILTERS.type(HeuristicFilterConfig)


@FILTERS.register("gopher_quality")
class GopherQualityConfig(HeuristicFilterConfig):
    """Gopher's quality rules (Rae et al. 2021, appendix A1); None disables a rule."""

    name: Literal["gopher_quality"] = "gopher_quality"
    min_doc_words: int | None = Field(default=50, ge=0)
    max_doc_words: int | None = Field(default=100_000, ge=0)
    min_avg_word_length: int | None = Field(default=3, ge=0)
    max_avg_word_length: int | None = Field(default=10, ge=0)
    max_symbol_word_ratio: float | None = Field(default=0.1, ge=0)
    max_bullet_lines_ratio: Ratio | None = 0.9
    max_ellipsis_lines_ratio: Ratio | None = 0.3
    max_non_alpha_words_ratio: Ratio | None = 0.8  # datatrove's name: min share of alpha words
    min_stop_words: int | None = Field(default=2, ge=0)
    stop_words: list[str] | None = None  # None: datatrove's eight English stop words

    def make_filter(self) -> Any:
        from datatrove.pipeline.filters import GopherQualityFilter

        return GopherQualityFilter(**self.datatrove_kwargs())


@FILTERS.register("gopher_repetition")
class GopherRepetitionConfig(HeuristicFilterConfig):
    """Gopher's repetition rules: duplicated lines and paragraphs, and the character share of
    the most frequent n-grams (``top_n_grams``) and of all duplicated n-grams (``dup_n_grams``),
    as ``[n, max fraction]`` pairs."""

    name: Literal["gopher_repetition"] = "gopher_repetition"
    dup_line_frac: Ratio | None = 0.3
    dup_para_frac: Ratio | None = 0.3
    dup_line_char_frac: Ratio | None = 0.2
    dup_para_char_frac: Ratio | None = 0.2
    top_n_grams: list[tuple[int, Ratio]] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    dup_n_grams: list[tuple[int, Ratio]] = [
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    ]

    def make_filter(self) -> Any:
        from datatrove.pipeline.filters import GopherRepetitionFilter

        kwargs = self.datatrove_kwargs()
        kwargs["top_n_grams"] = tuple(map(tuple, kwargs["top_n_grams"]))
        kwargs["dup_n_grams"] = tuple(map(tuple, kwargs["dup_n_grams"]))
        return GopherRepetitionFilter(**kwargs)


@FILTERS.register("c4_quality")
class C4QualityConfig(HeuristicFilterConfig):
    """C4's rules (Raffel et al. 2020): keep lines ending in terminal punctuation with enough
    words, drop documents with too few sentences, "lorem ipsum" or a curly bracket; -1 disables
    a count rule."""

    name: Literal["c4_quality"] = "c4_quality"
    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = Field(default=5, ge=-1)
    min_words_per_line: int = Field(default=3, ge=-1)
    max_word_length: int = Field(default=1000, ge=-1)
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True

    def make_filter(self) -> Any:
        from datatrove.pipeline.filters import C4QualityFilter

        return C4QualityFilter(**self.datatrove_kwargs())


@FILTERS.register("fineweb_quality")
class FineWebQualityConfig(HeuristicFilterConfig):
    """FineWeb's rules (Penedo et al. 2024): share of lines ending in punctuation, of short
    lines, of characters in duplicated lines, and newlines per word."""

    name: Literal["fineweb_quality"] = "fineweb_quality"
    line_punct_thr: Ratio = 0.12
    line_punct_exclude_zero: bool = False
    stop_chars: list[str] | None = None  # None: datatrove's terminal punctuation
    short_line_thr: Ratio = 0.67
    short_line_length: int = Field(default=30, ge=0)
    char_duplicates_ratio: Ratio = 0.01
    new_line_ratio: float = Field(default=0.3, ge=0)

    def make_filter(self) -> Any:
        from datatrove.pipeline.filters import FineWebQualityFilter

        kwargs = self.datatrove_kwargs()
        if kwargs["stop_chars"] is not None:
            kwargs["stop_chars"] = tuple(kwargs["stop_chars"])  # str.endswith needs a tuple
        return FineWebQualityFilter(**kwargs)
