"""``language``: a filter that identifies each document's language and keeps the ones wanted.

``{name: language, keep: [de, es, it], min_confidence: 0.5}`` removes a document identified as
French with the reason ``language:fr``, one in German below the confidence with
``language_uncertain:de``, and tags every document it keeps with ``metadata["language"]`` and
``metadata["language_confidence"]``, which the heuristic filters' ``language: auto`` then reads.
Without ``keep`` it keeps every language: a tagger. See ``data.language`` for the identifier.
"""

from __future__ import annotations

from typing import Literal

from transferlab.curation.heuristics import FILTERS, FilterConfig, FilterOutcome
from transferlab.data.language import LanguageSelection
from transferlab.data.sources import TextDocument


@FILTERS.register("language")
class LanguageFilterConfig(FilterConfig, LanguageSelection):
    """Keep documents in ``keep`` (None: any language) identified with at least
    ``min_confidence``, among ``candidates`` when given; tag the kept ones."""

    name: Literal["language"] = "language"

    def build(self) -> LanguageFilter:
        return LanguageFilter(self.stage_name, self)


class LanguageFilter:
    """The ``language`` filter applied to ``TextDocument``s one at a time."""

    def __init__(self, name: str, selection: LanguageSelection) -> None:
        self.name = name
        self._selection = selection

    def __call__(self, doc: TextDocument) -> FilterOutcome:
        verdict = self._selection.judge(doc.text)
        if not verdict.kept:
            return FilterOutcome(False, verdict.reason, doc.text)
        return FilterOutcome(True, None, doc.text, verdict.tags())
