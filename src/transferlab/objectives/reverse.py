"""Reverse training (Golovneva et al. 2024, "Reverse Training to Nurse the Reversal Curse").

A share ``reverse_fraction`` of the texts of each window (documents, see ``objectives.reorder``)
is reversed, and the model is trained by clm on the result, so it reads facts in both orders: a
biography that states "Ann Marie Smith was born in New York." also reads
"New York in born was Ann Marie Smith." and the model learns to go from the city to the person.

``unit`` says what is reversed:

- ``token``: the order of the tokens;
- ``word``: the order of the words, each word's tokens kept in order (``objectives.words``:
  punctuation is a word of its own, and the opening word's space moves, so the text stays
  well-formed: "Ann was born." -> ". born was Ann");
- ``entity``: the order of the words, with every entity name the world declares kept whole
  ("Ann Marie Smith", "University of Chicago", "March 4, 1983"; ``objectives.entities``).

Real text declares no entities: ``unit: entity`` there refuses to build unless
``without_entities: words`` says to reverse words instead. Attention is causal.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from transferlab.config.registry import OBJECTIVES
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives.base import Attention, TokenPredictionConfig
from transferlab.objectives.context import TextContext
from transferlab.objectives.entities import text_units
from transferlab.objectives.reorder import (
    ReorderLM,
    WithoutEntities,
    entity_lexicon,
    require_text,
)
from transferlab.objectives.words import word_table


class ReverseLM(ReorderLM):
    attention = "causal"

    def __init__(self, cfg: ReverseConfig, special: SpecialTokenIds, text: TextContext) -> None:
        super().__init__(special, cfg.reverse_fraction, cfg.z_loss)
        self.unit = cfg.unit
        self.words = word_table(text.tokenizer) if cfg.unit != "token" else None
        self.lexicon = (
            entity_lexicon("reverse with unit: entity", text, cfg.without_entities)
            if cfg.unit == "entity"
            else None
        )

    def rearrange(self, text: np.ndarray, keys: np.ndarray) -> np.ndarray:
        if self.words is None:
            return text[::-1].copy()
        units = text_units(text, self.words, self.lexicon)
        pieces = [text[unit.start : unit.end] for unit in reversed(units)]
        return np.concatenate(self.words.respace(pieces, first=len(pieces) - 1))


@OBJECTIVES.register("reverse")
class ReverseConfig(TokenPredictionConfig):
    name: Literal["reverse"] = "reverse"
    attention: ClassVar[Attention] = "causal"
    needs_text: ClassVar[bool] = True
    reverse_fraction: float = Field(default=0.5, ge=0, le=1)  # share of texts reversed
    unit: Literal["token", "word", "entity"] = "entity"  # what is reversed (entity: names whole)
    # unit entity on text without entity names (real text): error, or reverse words instead
    without_entities: WithoutEntities = "error"

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> ReverseLM:
        return ReverseLM(self, special, require_text("reverse", text))
