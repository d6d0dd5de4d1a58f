"""Word splitting and stop words per language, for the heuristic filters' ``language`` option.

datatrove splits words with a tokenizer per language (``load_word_tokenizer``): blank spaCy
pipelines for most European languages, which need nothing downloaded; others need packages
transferlab does not install (stanza, pythainlp, ...) and are refused here. Gopher's stop-word
rule counts datatrove's eight English stop words; for any other language the list is spaCy's
(``spacy.lang.<code>.stop_words``, shipped with spaCy). Both are checked once per language and
process, so an unusable language is refused at config validation, not mid-run.
"""

from __future__ import annotations

import importlib
from functools import cache

ENGLISH = "en"


@cache
def word_splitting_problem(language: str) -> str | None:
    """Why datatrove cannot split ``language`` into words offline here, or None if it can."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    try:
        load_word_tokenizer(language).word_tokenize("a b")  # loads the spaCy pipeline too
    except (ValueError, ImportError) as exc:
        return (
            f"no offline word splitting for {language!r} ({str(exc).splitlines()[0]}); install "
            "what it names or pick another language"
        )
    return None


@cache
def stop_words(language: str) -> tuple[str, ...] | None:
    """The stop words Gopher's rule counts for ``language``, or None when there is no list."""
    if language == ENGLISH:
        from datatrove.pipeline.filters.gopher_quality_filter import STOP_WORDS

        return tuple(STOP_WORDS)
    try:
        module = importlib.import_module(f"spacy.lang.{language}.stop_words")
    except ImportError:
        return None
    return tuple(sorted(module.STOP_WORDS))
