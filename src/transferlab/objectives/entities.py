"""Entity names in a sequence of token ids, found by longest match against the world's lexicon.

The world declares its entities as strings (``World.entities()``: full names, cities,
universities, dates...), and the objective never sees the world: ``EntityLexicon`` tokenizes
each name twice, as it reads at the start of a text (``"Ann Marie Smith"``) and inside one
(``" Ann Marie Smith"``), and keeps the token sequences in a trie over token ids. A text is then
cut into units (``text_units``): at each word start the longest entity that also ends where a
word ends becomes one unit (so ``New York`` is not found inside ``New Yorker``), and every other
word is a unit of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from transferlab.data.tokenizer import TextTokenizer
from transferlab.objectives.words import WordTable

_END = -1  # trie key marking that the path so far spells an entity (token ids are >= 0)


class Unit(NamedTuple):
    """Tokens ``[start, end)`` of a text: one word, or one whole entity name."""

    start: int
    end: int
    entity: bool


class EntityLexicon:
    def __init__(self, tokenizer: TextTokenizer, entities: Sequence[str]) -> None:
        names = [name for name in dict.fromkeys(entities) if name.strip()]
        self._size = len(names)
        self._root: dict[int, dict] = {}
        for ids in tokenizer.encode_batch([*names, *(" " + name for name in names)]):
            node = self._root
            for token in ids:
                node = node.setdefault(token, {})
            node[_END] = {}

    def __len__(self) -> int:
        return self._size  # distinct entity names

    def longest(self, tokens: list[int], start: int, word_end: list[bool]) -> int:
        """The end of the longest entity starting at ``start`` that ends where a word ends
        (``word_end[end]``); ``start`` when none does."""
        node, best = self._root, start
        for end in range(start + 1, len(tokens) + 1):
            node = node.get(tokens[end - 1])
            if node is None:
                break
            if _END in node and word_end[end]:
                best = end
        return best


def text_units(
    tokens: np.ndarray, words: WordTable, lexicon: EntityLexicon | None = None
) -> list[Unit]:
    """``tokens`` (a text, specials excluded) cut into consecutive units: its words, with every
    entity of ``lexicon`` (None: none) taken whole."""
    starts = words.word_starts(tokens).tolist()
    ends = [*starts[1:], len(tokens)]
    if lexicon is None:
        return [Unit(start, end, False) for start, end in zip(starts, ends, strict=True)]
    ids = tokens.tolist()  # plain ints: the trie walk is a dict lookup per token
    word_end = [False] * (len(ids) + 1)
    for start in [*starts[1:], len(ids)]:
        word_end[start] = True
    units: list[Unit] = []
    for start, end in zip(starts, ends, strict=True):
        if units and start < units[-1].end:
            continue  # inside the entity just taken
        entity_end = lexicon.longest(ids, start, word_end)
        units.append(
            Unit(start, entity_end, True) if entity_end > start else Unit(start, end, False)
        )
    return units
