"""Where words start in a sequence of token ids, read off the run's tokenizer.

Objectives that reorder text by word (reversal, chunk permutation) need to know, per token id,
what the token's text looks like. One rule serves the word-level and the byte-level BPE
tokenizers alike, because both keep a word's leading space inside its first token (``" Lynn"``,
``"ĠLynn"``): a token *continues* the word before it when its text starts with a letter, mark or
digit (a BPE piece inside a word, or the ``s`` of a word-level ``'`` ``s``); every other token
starts a word (a leading space, or punctuation, which is a word of its own). The first token of
a text always starts a word.

A reordered text is kept well-formed by moving one space (``respace``): the word that opened the
text, written without a leading space only because it came first, gets its space when it moves
inward, and the word that now opens the text loses its space. Both swaps need the other variant
to be a single token of the vocabulary; where it is not, the token is kept as it is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from transferlab.data.tokenizer import TextTokenizer

NONE = -1  # "no such token" in the variant tables
SENTENCE_END = frozenset(".!?")


@dataclass(frozen=True)
class WordTable:
    """Facts about every token id of a tokenizer (arrays indexed by id)."""

    starts_word: np.ndarray  # bool: the token starts a word (else it continues the one before)
    opens_text: np.ndarray  # bool: a word token without a leading space (as text opens)
    glued: np.ndarray  # bool: no leading whitespace (joined to what comes before it)
    spaced: np.ndarray  # int: the id of the token's text with a leading space; NONE if none
    unspaced: np.ndarray  # int: the id of the token's text without its leading space; or NONE
    punctuation: np.ndarray  # bool: punctuation only (a word of its own, e.g. "," or ".")
    ends_sentence: np.ndarray  # bool: punctuation whose last mark is one of . ! ?

    def word_starts(self, tokens: np.ndarray) -> np.ndarray:
        """Positions in ``tokens`` (a text, specials excluded) where a word starts; 0 always."""
        starts = self.starts_word[tokens]
        starts[0] = True
        return np.flatnonzero(starts)

    def respace(self, units: list[np.ndarray], first: int) -> list[np.ndarray]:
        """``units`` (a text's words or chunks, reordered) with the spaces moved so that the
        text reads as written: ``first`` is the index in ``units`` of the unit that opened the
        text before reordering (see the module docstring)."""
        if first == 0 or not self.opens_text[units[first][0]]:
            return units  # the opening word kept its place, or the text opened mid-way
        out = list(units)
        out[first] = np.array([_variant(self.spaced, units[first][0]), *units[first][1:]])
        out[0] = np.array([_variant(self.unspaced, units[0][0]), *units[0][1:]])
        return out


def _variant(table: np.ndarray, token: int) -> int:
    return int(table[token]) if table[token] != NONE else int(token)


def word_table(tokenizer: TextTokenizer) -> WordTable:
    """The ``WordTable`` of ``tokenizer`` (every id below its ``vocab_size``)."""
    texts = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
    word_char = np.array([_is_word_char(text[:1]) for text in texts])
    spaced_first = np.array([text[:1] == " " and len(text) > 1 for text in texts])
    return WordTable(
        starts_word=~word_char,
        opens_text=word_char,
        glued=np.array([not text[:1].isspace() for text in texts]),
        spaced=_single_tokens(tokenizer, texts, word_char, lambda text: " " + text),
        unspaced=_single_tokens(tokenizer, texts, spaced_first, lambda text: text[1:]),
        punctuation=np.array([_is_punctuation(text) for text in texts]),
        ends_sentence=np.array(
            [_is_punctuation(t) and t.strip()[-1] in SENTENCE_END for t in texts]
        ),
    )


def _is_word_char(char: str) -> bool:
    # U+FFFD: a BPE token holding part of a multi-byte character, which continues its word.
    return char == "\ufffd" or (char != "" and unicodedata.category(char)[0] in "LMN")


def _is_punctuation(text: str) -> bool:
    return bool(text.strip()) and not any(map(_is_word_char, text))


def _single_tokens(
    tokenizer: TextTokenizer, texts: list[str], wanted: np.ndarray, rewrite: Callable[[str], str]
) -> np.ndarray:
    """Per id: the single token whose text is ``rewrite(text)`` where ``wanted``, else NONE."""
    ids = np.flatnonzero(wanted)
    variants = [rewrite(texts[i]) for i in ids]
    table = np.full(len(texts), NONE, dtype=np.int64)
    for i, text, encoded in zip(ids, variants, tokenizer.encode_batch(variants), strict=True):
        if len(encoded) == 1 and texts[encoded[0]] == text:  # not <unk>, not split
            table[i] = encoded[0]
    return table
