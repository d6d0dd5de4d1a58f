"""Semantic-aware permutation training (Guo et al. 2024, "Mitigating Reversal Curse in Large
Language Models via Semantic-aware Permutation Training").

A share ``permute_fraction`` of the texts of each window (``objectives.reorder``) is rearranged
sentence by sentence, and the model is trained by clm on the result. Each sentence (up to and
including its final ``.``, ``!`` or ``?``) is cut into chunks at entity and phrase boundaries:
every entity name the world declares is a chunk (``objectives.entities``), and the words between
two entities form a phrase chunk, which a punctuation mark such as ``,`` also closes; a word
written without a space before it (``'s``, ``,``) stays with the chunk it follows. The chunks
are then put in reverse order (``order: reverse``) or in a random order drawn from the step's
generator (``order: random``: sorted by a uniform key per chunk); the final punctuation stays
last and the sentences keep their order. "Ann Marie Smith was born in New York." becomes "New York was born in Ann Marie Smith."

The paper segments sentences with a language model; here the world's entity names stand in for
it. Real text declares no entities: permutation there refuses to build unless
``without_entities: words`` makes every word a chunk. Attention is causal.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from transferlab.config.registry import OBJECTIVES
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives.base import Attention, TokenPredictionConfig
from transferlab.objectives.context import TextContext
from transferlab.objectives.entities import Unit, text_units
from transferlab.objectives.reorder import (
    ReorderLM,
    WithoutEntities,
    entity_lexicon,
    require_text,
)
from transferlab.objectives.words import word_table

Span = tuple[int, int]


class PermutationLM(ReorderLM):
    attention = "causal"

    def __init__(self, cfg: PermutationConfig, special: SpecialTokenIds, text: TextContext) -> None:
        super().__init__(special, cfg.permute_fraction, cfg.z_loss)
        self.order = cfg.order
        self.words = word_table(text.tokenizer)
        self.lexicon = entity_lexicon("permutation", text, cfg.without_entities)

    def rearrange(self, text: np.ndarray, keys: np.ndarray) -> np.ndarray:
        out: list[np.ndarray] = []
        for sentence in self._sentences(text, text_units(text, self.words, self.lexicon)):
            final = sentence[-1:] if self._ends_sentence(text, sentence[-1]) else []
            chunks = self._chunks(text, sentence[: len(sentence) - len(final)])
            order = self._order(chunks, keys)
            pieces = [text[start:end] for start, end in (chunks[i] for i in order)]
            if pieces:
                out.extend(self.words.respace(pieces, first=order.index(0)))
            out.extend(text[unit.start : unit.end] for unit in final)
        return np.concatenate(out)

    def _ends_sentence(self, text: np.ndarray, unit: Unit) -> bool:
        return (
            not unit.entity
            and unit.end - unit.start == 1
            and self.words.ends_sentence[text[unit.start]]
        )

    def _sentences(self, text: np.ndarray, units: list[Unit]) -> list[list[Unit]]:
        """``units`` split after every sentence-final punctuation mark."""
        sentences: list[list[Unit]] = [[]]
        for unit in units:
            sentences[-1].append(unit)
            if self._ends_sentence(text, unit):
                sentences.append([])
        return [sentence for sentence in sentences if sentence]

    def _chunks(self, text: np.ndarray, units: list[Unit]) -> list[Span]:
        """The chunks of a sentence body: entities whole, the words between them as phrases that
        punctuation closes (every word a chunk of its own when there is no lexicon); a word
        written without a space before it ("'s", ",") stays with the chunk before it."""
        chunks: list[Span] = []
        open_phrase = False  # whether the last chunk is a phrase that the next word extends
        for unit in units:
            punctuation = bool(self.words.punctuation[text[unit.end - 1]])
            glued = bool(chunks) and not unit.entity and self.words.glued[text[unit.start]]
            if glued or (open_phrase and not unit.entity):
                chunks[-1] = (chunks[-1][0], unit.end)
                open_phrase = open_phrase and not punctuation
            else:
                chunks.append((unit.start, unit.end))
                open_phrase = self.lexicon is not None and not unit.entity and not punctuation
        return chunks

    def _order(self, chunks: list[Span], keys: np.ndarray) -> list[int]:
        """The chunks' new order: reversed, or sorted by the key at each chunk's first token."""
        if self.order == "reverse":
            return list(range(len(chunks) - 1, -1, -1))
        return np.argsort(keys[[start for start, _ in chunks]], kind="stable").tolist()


@OBJECTIVES.register("permutation")
class PermutationConfig(TokenPredictionConfig):
    name: Literal["permutation"] = "permutation"
    attention: ClassVar[Attention] = "causal"
    needs_text: ClassVar[bool] = True
    permute_fraction: float = Field(default=0.5, ge=0, le=1)  # share of texts permuted
    order: Literal["reverse", "random"] = "reverse"  # the chunks' new order in each sentence
    # on text without entity names (real text): error, or make every word a chunk
    without_entities: WithoutEntities = "error"

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> PermutationLM:
        return PermutationLM(self, special, require_text("permutation", text))
