"""Offline language identification with py3langid, whose model ships inside its wheel.

``identify(text)`` gives a document's most probable language (an ISO 639 code among
``language_codes()``) and its normalized probability, rounded to ``CONFIDENCE_DIGITS`` so the
value written into metadata is the value decisions were made on. A ``LanguageSelection``
(``keep``, ``min_confidence``, ``candidates``) judges one document; the source option
``language`` and the curation filter ``language`` both use it, and tag what they keep with
``metadata["language"]`` and ``metadata["language_confidence"]``.

Identification is deterministic: py3langid is a naive Bayes model over byte n-grams, with no
sampling. ``candidates`` restricts the model to the languages a corpus may contain, which helps
short texts (a short Spanish line otherwise often reads as Galician or Catalan).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from transferlab.config.base import BaseConfig

LANGUAGE_KEY = "language"  # metadata keys of a tagged document
CONFIDENCE_KEY = "language_confidence"
CONFIDENCE_DIGITS = 4


@cache
def _identifier(candidates: tuple[str, ...] | None) -> Any:
    """A py3langid identifier with normalized probabilities, restricted to ``candidates``; one
    per candidate set and process (loading the model takes about a second)."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as exc:
        raise ValueError(
            "language identification needs py3langid; install it with "
            "`pip install 'transferlab[curation]'`"
        ) from exc
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if candidates is not None:
        identifier.set_languages(list(candidates))
    return identifier


@cache
def language_codes() -> tuple[str, ...]:
    """Every language py3langid can tell, as sorted ISO 639 codes."""
    return tuple(sorted(_identifier(None).labels))


def check_languages(codes: list[str]) -> list[str]:
    """``codes`` if each is a code py3langid knows, else a one-line error naming the valid ones."""
    unknown = [code for code in codes if code not in language_codes()]
    if unknown:
        raise ValueError(
            f"unknown language code(s) {', '.join(map(repr, unknown))}; use ISO 639 codes "
            f"py3langid knows: {', '.join(language_codes())}"
        )
    return codes


def identify(text: str, candidates: tuple[str, ...] | None = None) -> tuple[str, float]:
    """The most probable language of ``text`` (among ``candidates``, default all) and its
    probability."""
    code, confidence = _identifier(candidates).classify(text)
    return code, round(confidence, CONFIDENCE_DIGITS)


@dataclass(frozen=True)
class LanguageVerdict:
    """One document's language, its confidence and whether a selection keeps it; ``reason``
    says why not (``language:fr``, or ``language_uncertain:de`` below ``min_confidence``)."""

    language: str
    confidence: float
    reason: str | None

    @property
    def kept(self) -> bool:
        return self.reason is None

    def tags(self) -> dict[str, Any]:
        return {LANGUAGE_KEY: self.language, CONFIDENCE_KEY: self.confidence}


def _languages(value: Any) -> Any:
    """A single code is a list of one."""
    return [value] if isinstance(value, str) else value


Languages = Annotated[list[str], BeforeValidator(_languages), Field(min_length=1)]


class LanguageSelection(BaseConfig):
    """Which languages to keep: documents whose most probable language is in ``keep`` (None:
    any) with a probability of at least ``min_confidence``; identification considers only
    ``candidates`` when given."""

    keep: Languages | None = None  # ISO 639 codes of the languages kept; None: any
    # the least probability of the identified language a kept document needs (0: any)
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    # the only languages identification chooses among; None: every language it knows
    candidates: Languages | None = None

    @field_validator("keep", "candidates")
    @classmethod
    def _known(cls, codes: list[str] | None) -> list[str] | None:
        return None if codes is None else check_languages(codes)

    @model_validator(mode="after")
    def _keep_among_candidates(self) -> LanguageSelection:
        missing = sorted(set(self.keep or ()) - set(self.candidates or self.keep or ()))
        if missing:
            raise ValueError(
                f"keep names {', '.join(map(repr, missing))}, not among candidates (never "
                "identified then); add them to candidates"
            )
        return self

    def judge(self, text: str) -> LanguageVerdict:
        candidates = None if self.candidates is None else tuple(sorted(self.candidates))
        code, confidence = identify(text, candidates)
        if self.keep is not None and code not in self.keep:
            return LanguageVerdict(code, confidence, f"language:{code}")
        if confidence < self.min_confidence:
            return LanguageVerdict(code, confidence, f"language_uncertain:{code}")
        return LanguageVerdict(code, confidence, None)


def _selection(value: Any) -> Any:
    """``de`` or ``[de, es]`` is shorthand for ``{keep: [...]}``."""
    return {"keep": value} if isinstance(value, str | list) else value


# The ``language`` option of a source: a code, a list of codes or a ``LanguageSelection``.
LanguageField = Annotated[LanguageSelection, BeforeValidator(_selection)]
