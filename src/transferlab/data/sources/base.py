"""What every source shares: the document record, skip statistics and the streaming base config.

A source kind subclasses ``SourceConfig`` and implements ``_candidates(stats)``: it returns an
iterator of candidate documents, counting in ``stats`` whatever it cannot even turn into a
document (an unreadable file, a line that is not JSON, ...). ``iter_documents`` then applies the
checks every kind shares (empty, binary, absurdly long lines), the ``limit``, the counts, and one
summary warning per pass.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from transferlab.config.base import ComponentConfig
from transferlab.data.language import LanguageField


class SourceError(ValueError):
    """A source that cannot be read at all (missing path, missing package, wrong field name);
    the message is one line naming the problem and the fix."""


class SkippedDocumentsWarning(UserWarning):
    """Issued once per pass over a source that skipped anything, with the counts per reason."""


class Skip:
    """Reasons a document (or a whole file) is skipped; the keys of ``SourceStats.skipped``."""

    EMPTY = "empty"  # no text, or only whitespace
    BINARY = "binary"  # NUL bytes: not text
    INVALID_UTF8 = "invalid_utf8"
    LONG_LINE = "long_line"  # a line longer than ``max_line_chars``
    UNREADABLE = "unreadable"  # the OS or the file format refused to read it
    INVALID_JSON = "invalid_json"  # a jsonl line that is not a JSON object
    OVERSIZED_RECORD = "oversized_record"  # a jsonl line longer than ``max_record_bytes``
    MISSING_FIELD = "missing_field"  # the record lacks the text (or id) field, or it is null
    INVALID_FIELD = "invalid_field"  # the text field is not a string
    SYNTAX_ERROR = "syntax_error"  # Python source that ``ast`` cannot parse


@dataclass(frozen=True)
class TextDocument:
    """One document of real text. ``id`` is unique within its source and stable across passes;
    ``source`` is the source's name (its ``label``, else its kind), which later tags the domain."""

    id: str
    text: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceStats:
    """What one pass over a source produced: documents and UTF-8 bytes of their text, and the
    skips per reason with the first place each reason occurred. A skip counts one unit: a whole
    file when the file is skipped, else one document or record."""

    documents: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, where)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """``empty=2 (e.g. a.txt), binary=1 (e.g. b.bin)``, reasons in alphabetical order."""
        return ", ".join(
            f"{reason}={self.skipped[reason]} (e.g. {self.examples[reason]})"
            for reason in sorted(self.skipped)
        )


class SourceConfig(ComponentConfig):
    """A streamed source of real text; subclasses are registered in ``SOURCES`` by kind.

    ``label`` names the source in documents (default: its kind), so two sources of one kind can
    be told apart; ``limit`` keeps only the first N documents, for quick tries. ``match`` keeps
    only documents whose id matches one of its glob patterns (``fnmatch``: ``*`` also crosses
    ``/``) and ``exclude`` drops those matching one of its own: together with ``label`` they tag
    domains by path pattern, e.g. a stdlib source of ``["test/*", "*/tests/*"]`` labelled tests.
    ``language`` (a code, a list, or ``{keep, min_confidence, candidates}``) keeps only documents
    identified as in one of those languages and tags them (see ``data.language``): one corpus
    splits into a domain per language.
    """

    label: str | None = Field(default=None, min_length=1)
    limit: int | None = Field(default=None, gt=0)
    # skip a document with a longer line (counted as long_line): minified or binary-like text
    max_line_chars: int = Field(default=100_000, gt=0)
    # glob patterns (fnmatch: * also crosses /): keep only the ids matching one; None: all
    match: list[str] | None = Field(default=None, min_length=1)
    exclude: list[str] = Field(default_factory=list)  # glob patterns: drop the ids matching one
    language: LanguageField | None = None

    @model_serializer(mode="wrap")
    def _without_language(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when unset, so data stages and runs keyed before the option existed keep
        # their keys.
        data = handler(self)
        if self.language is None:
            data.pop("language", None)
        return data

    @property
    def source_name(self) -> str:
        return self.label or self.name

    def iter_documents(self, stats: SourceStats | None = None) -> Iterator[TextDocument]:
        """Stream the documents in a deterministic order, one at a time.

        Problems with the source as a whole (a missing path, say) raise ``SourceError`` here,
        before the first document; bad documents are skipped and counted in ``stats`` (pass one
        to read the counts after the pass), with one ``SkippedDocumentsWarning`` at the end.
        """
        stats = SourceStats() if stats is None else stats
        return self._checked(self._candidates(stats), stats)

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        """Candidate documents, before the shared checks. Raise ``SourceError`` eagerly (this is
        called before iteration starts) and return a generator for the lazy part."""
        raise NotImplementedError

    def _checked(
        self, candidates: Iterator[TextDocument], stats: SourceStats
    ) -> Iterator[TextDocument]:
        try:
            for doc in candidates:
                if not self.selects(doc.id):
                    continue
                reason = text_problem(doc.text, self.max_line_chars)
                if reason is not None:
                    stats.skip(reason, doc.id)
                    continue
                if self.language is not None:
                    verdict = self.language.judge(doc.text)
                    if not verdict.kept:
                        continue
                    doc = replace(doc, metadata={**doc.metadata, **verdict.tags()})
                stats.documents += 1
                stats.bytes += len(doc.text.encode("utf-8"))
                yield doc
                if self.limit is not None and stats.documents >= self.limit:
                    return
        finally:  # also when the consumer stops early: the counts so far are still worth a word
            _warn_skipped(self.source_name, stats)

    def provenance(self) -> dict[str, Any]:
        """What the data stage records about where this source's documents came from, beyond
        its config (a curated source names its curation folder); empty by default."""
        return {}

    def input_files(self) -> list[Path]:
        """The local files this source reads, whose bytes (``file_digests``) key what is built
        from it: its data stage, an evaluation on it. Empty for sources that are no user files
        (a world, the standard library, a hub dataset): they are keyed by their config alone."""
        return []

    def selects(self, doc_id: str) -> bool:
        """Whether ``match`` and ``exclude`` keep the document with this id."""
        if self.match is not None and not any(fnmatchcase(doc_id, p) for p in self.match):
            return False
        return not any(fnmatchcase(doc_id, p) for p in self.exclude)


def text_problem(text: str, max_line_chars: int) -> str | None:
    """The reason to skip ``text`` (empty, binary, a too long line), or None if it is fine."""
    if not text or text.isspace():
        return Skip.EMPTY
    if "\x00" in text:
        return Skip.BINARY
    if len(text) > max_line_chars and longest_line(text) > max_line_chars:
        return Skip.LONG_LINE
    return None


def longest_line(text: str) -> int:
    """Length of the longest ``\\n``-separated line, without copying the lines out."""
    longest, start = 0, 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            return max(longest, len(text) - start)
        longest = max(longest, end - start)
        start = end + 1


def _warn_skipped(source: str, stats: SourceStats) -> None:
    if stats.skipped:
        warnings.warn(
            f"source {source!r} skipped {stats.total_skipped} item(s) and kept "
            f"{stats.documents} document(s): {stats.summary()}",
            SkippedDocumentsWarning,
            stacklevel=3,
        )
