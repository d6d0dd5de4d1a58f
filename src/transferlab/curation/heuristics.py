"""Heuristic quality filters from datatrove, with their thresholds as typed configs.

Each config (registered in ``FILTERS``) mirrors the constructor of one datatrove filter, with
datatrove's defaults, and ``build()`` makes a ``HeuristicFilter`` that runs it in this process:
datatrove filters are plain objects whose ``filter(doc)`` returns True (keep), False or
``(False, reason)``, so no pipeline executor (and none of its worker processes) is needed, and
the order of documents is ours. Words and sentences are split by datatrove's word tokenizer of
the filter's ``language`` (default English; ``auto``: each document's own, see ``words``), a
blank spaCy pipeline: nothing is downloaded.

Other filters (``language``) subclass ``FilterConfig`` and build any callable that returns a
``FilterOutcome``.

``C4QualityFilter`` also edits a document it keeps (it drops lines without terminal punctuation,
with too few words, ...); a ``HeuristicFilter`` returns the edited text, as datatrove passes it on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from transferlab.config.base import ComponentConfig
from transferlab.config.registry import FILTERS
from transferlab.curation.words import ENGLISH, stop_words, word_splitting_problem
from transferlab.data.language import LANGUAGE_KEY, check_languages, identify
from transferlab.data.sources import TextDocument

Ratio = Annotated[float, Field(ge=0, le=1)]
EMPTIED = "empty_after_filter"  # a document the filter kept but left without text
AUTO = "auto"  # judge each document in its own language


@dataclass(frozen=True)
class FilterOutcome:
    """What a filter made of one document: kept or not, datatrove's reason for removing it (the
    filter's name when datatrove gives none), the text passed on (edited by C4) and metadata
    to add to a kept document (the language filter's tags)."""

    kept: bool
    reason: str | None
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class FilterConfig(ComponentConfig):
    """A filter stage of curation; ``label`` names it in statistics (default: its kind), so
    one kind can appear twice with different settings. ``build()`` returns a callable from a
    ``TextDocument`` to its ``FilterOutcome``, with the stage name as ``name``."""

    label: str | None = Field(default=None, min_length=1)

    @property
    def stage_name(self) -> str:
        return self.label or self.name

    def build(self) -> Callable[[TextDocument], FilterOutcome]:
        raise NotImplementedError


class HeuristicFilterConfig(FilterConfig):
    """A datatrove heuristic filter, judging words in ``language``: an ISO 639 code, or
    ``auto`` for each document's ``metadata["language"]`` (identified when missing)."""

    language: str = ENGLISH  # how words and sentences are split (and stop words chosen)

    @model_serializer(mode="wrap")
    def _without_english(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out at English, so curations keyed before the option existed keep their keys.
        data = handler(self)
        if self.language == ENGLISH:
            data.pop("language", None)
        return data

    @field_validator("language")
    @classmethod
    def _known_language(cls, language: str) -> str:
        return language if language == AUTO else check_languages([language])[0]

    @model_validator(mode="after")
    def _language_usable(self) -> HeuristicFilterConfig:
        problem = None if self.language in (AUTO, ENGLISH) else self.language_problem(self.language)
        if problem is not None:
            raise ValueError(problem)
        return self

    def language_problem(self, language: str) -> str | None:
        """Why this filter cannot judge ``language`` offline, or None if it can."""
        return word_splitting_problem(language)

    def datatrove_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of the datatrove filter: every field but name, label and
        language."""
        return self.model_dump(exclude={"name", "label", "language"})

    def make_filter(self, language: str) -> Any:
        """The datatrove filter judging ``language`` (a code, never ``auto``)."""
        raise NotImplementedError

    def build(self) -> HeuristicFilter:
        return HeuristicFilter(self.stage_name, self)


class HeuristicFilter:
    """A datatrove filter applied to ``TextDocument``s one at a time; with ``language: auto``,
    one datatrove filter per language met, a document in a language the filter cannot judge
    being removed (``<name>_unsupported_language:<code>``)."""

    def __init__(self, name: str, cfg: HeuristicFilterConfig) -> None:
        self.name = name
        self._cfg = cfg
        self._filters: dict[str, Any] = {}  # by language; None where it cannot be judged

    def _filter_for(self, language: str) -> Any:
        if language not in self._filters:
            usable = language == self._cfg.language or self._cfg.language_problem(language) is None
            self._filters[language] = self._cfg.make_filter(language) if usable else None
        return self._filters[language]

    def __call__(self, doc: TextDocument) -> FilterOutcome:
        from datatrove.data import Document

        language = self._cfg.language
        if language == AUTO:
            language = doc.metadata.get(LANGUAGE_KEY) or identify(doc.text)[0]
        datatrove_filter = self._filter_for(language)
        if datatrove_filter is None:
            return FilterOutcome(False, f"{self.name}_unsupported_language:{language}", doc.text)
        candidate = Document(text=doc.text, id=doc.id, metadata=dict(doc.metadata))
        try:
            result = datatrove_filter.filter(candidate)
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
FilterField = FILTERS.type(FilterConfig)


@FILTERS.register("gopher_quality")
class GopherQualityConfig(HeuristicFilterConfig):
    """Gopher's quality rules (Rae et al. 2021, appendix A1); None disables a rule."""

    name: Literal["gopher_quality"] = "gopher_quality"
    # drop a document of fewer words (words of punctuation only not counted)
    min_doc_words: int | None = Field(default=50, ge=0)
    max_doc_words: int | None = Field(default=100_000, ge=0)  # drop a document of more words
    # drop a document whose mean word length (characters) is below this
    min_avg_word_length: int | None = Field(default=3, ge=0)
    # drop a document whose mean word length (characters) is above this
    max_avg_word_length: int | None = Field(default=10, ge=0)
    # drop a document with more "#", or more ellipses, per word than this
    max_symbol_word_ratio: float | None = Field(default=0.1, ge=0)
    # drop a document with a larger share of lines starting with a bullet ("•" or "-")
    max_bullet_lines_ratio: Ratio | None = 0.9
    # drop a document with a larger share of lines ending in an ellipsis
    max_ellipsis_lines_ratio: Ratio | None = 0.3
    max_non_alpha_words_ratio: Ratio | None = 0.8  # datatrove's name: min share of alpha words
    # drop a document with fewer distinct stop words (of stop_words) than this
    min_stop_words: int | None = Field(default=2, ge=0)
    # None: datatrove's eight English stop words in English, spaCy's list in other languages
    stop_words: list[str] | None = None

    def language_problem(self, language: str) -> str | None:
        problem = super().language_problem(language)
        if problem is None and self._counts_stop_words() and stop_words(language) is None:
            problem = (
                f"no stop-word list for {language!r} in spaCy; give stop_words or set "
                "min_stop_words: null"
            )
        return problem

    def _counts_stop_words(self) -> bool:
        return bool(self.min_stop_words) and self.stop_words is None

    def make_filter(self, language: str) -> Any:
        from datatrove.pipeline.filters import GopherQualityFilter

        kwargs = self.datatrove_kwargs()
        if self._counts_stop_words():
            kwargs["stop_words"] = list(stop_words(language))
        return GopherQualityFilter(**kwargs, language=language)


@FILTERS.register("gopher_repetition")
class GopherRepetitionConfig(HeuristicFilterConfig):
    """Gopher's repetition rules: duplicated lines and paragraphs, and the character share of
    the most frequent n-grams (``top_n_grams``) and of all duplicated n-grams (``dup_n_grams``),
    as ``[n, max fraction]`` pairs. None disables a line or paragraph rule, an empty list the
    n-gram rules."""

    name: Literal["gopher_repetition"] = "gopher_repetition"
    # drop a document with a larger share of lines that repeat an earlier line
    dup_line_frac: Ratio | None = 0.3
    # drop a document with a larger share of paragraphs (split at blank lines) that repeat an
    # earlier paragraph
    dup_para_frac: Ratio | None = 0.3
    # drop a document with a larger share of its characters in repeated lines
    dup_line_char_frac: Ratio | None = 0.2
    # drop a document with a larger share of its characters in repeated paragraphs
    dup_para_char_frac: Ratio | None = 0.2
    # [n, max]: drop a document whose most frequent word n-gram covers more than max of its
    # characters
    top_n_grams: list[tuple[int, Ratio]] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    # [n, max]: drop a document whose repeated word n-grams cover more than max of its characters
    dup_n_grams: list[tuple[int, Ratio]] = [
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    ]

    def make_filter(self, language: str) -> Any:
        from datatrove.pipeline.filters import GopherRepetitionFilter

        kwargs = self.datatrove_kwargs()
        kwargs["top_n_grams"] = tuple(map(tuple, kwargs["top_n_grams"]))
        kwargs["dup_n_grams"] = tuple(map(tuple, kwargs["dup_n_grams"]))
        return GopherRepetitionFilter(**kwargs, language=language)


@FILTERS.register("c4_quality")
class C4QualityConfig(HeuristicFilterConfig):
    """C4's rules (Raffel et al. 2020): keep lines ending in terminal punctuation with enough
    words, drop documents with too few sentences, "lorem ipsum" or a curly bracket; -1 disables
    a count rule."""

    name: Literal["c4_quality"] = "c4_quality"
    # judge each line (C4); false: each sentence, joined back with spaces
    split_paragraph: bool = True
    remove_citations: bool = True  # delete Wikipedia citation marks ("[1]", "[edit]") in lines
    # drop lines not ending in . ? ! " or ' (or ending in "...")
    filter_no_terminal_punct: bool = True
    # drop a document with fewer sentences in its kept lines
    min_num_sentences: int = Field(default=5, ge=-1)
    min_words_per_line: int = Field(default=3, ge=-1)  # drop lines of fewer whitespace words
    max_word_length: int = Field(default=1000, ge=-1)  # drop lines with a longer word (chars)
    filter_lorem_ipsum: bool = True  # drop a document containing "lorem ipsum"
    filter_javascript: bool = True  # drop lines mentioning "javascript"
    filter_curly_bracket: bool = True  # drop a document with a "{" in a kept line
    # drop lines with a policy phrase ("terms of use", "privacy policy", "uses cookies", ...)
    filter_policy: bool = True

    def make_filter(self, language: str) -> Any:
        from datatrove.pipeline.filters import C4QualityFilter

        return C4QualityFilter(**self.datatrove_kwargs(), language=language)


@FILTERS.register("fineweb_quality")
class FineWebQualityConfig(HeuristicFilterConfig):
    """FineWeb's rules (Penedo et al. 2024): share of lines ending in punctuation, of short
    lines, of characters in duplicated lines, and newlines per word."""

    name: Literal["fineweb_quality"] = "fineweb_quality"
    # drop a document whose share of (non-blank) lines ending in a stop_chars mark is smaller
    line_punct_thr: Ratio = 0.12
    line_punct_exclude_zero: bool = False  # keep a document none of whose lines so end
    stop_chars: list[str] | None = None  # None: datatrove's terminal punctuation
    # drop a document whose share of short lines (short_line_length) is larger
    short_line_thr: Ratio = 0.67
    short_line_length: int = Field(default=30, ge=0)  # a line of at most this many chars is short
    # drop a document with a larger share of its characters in repeated lines
    char_duplicates_ratio: Ratio = 0.01
    # drop a document with more newlines per word (list-like text)
    new_line_ratio: float = Field(default=0.3, ge=0)

    def make_filter(self, language: str) -> Any:
        from datatrove.pipeline.filters import FineWebQualityFilter

        kwargs = self.datatrove_kwargs()
        if kwargs["stop_chars"] is not None:
            kwargs["stop_chars"] = tuple(kwargs["stop_chars"])  # str.endswith needs a tuple
        return FineWebQualityFilter(**kwargs, language=language)
