"""Causal LM on packed windows with the loss on the token after a marker only: the answer of
an equation ``a o b = c`` (the grokking setting of Power et al. 2022 and Nanda et al. 2023),
never the random operands, which no model can predict.

A target is kept exactly where the input token is the marker (``=`` by default), so position
``i`` holding ``=`` predicts the answer token ``i + 1``; every other target is IGNORE_INDEX. A
window holding no marker contributes no target. The world must write single-token answers
(``worlds.modular`` does): a longer answer would be trained on its first token alone.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from transferlab.config.registry import OBJECTIVES
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives.base import (
    IGNORE_INDEX,
    Attention,
    Batch,
    TokenPredictionConfig,
    TokenPredictionObjective,
)
from transferlab.objectives.context import TextContext


class EquationLM(TokenPredictionObjective):
    attention = "causal"

    def __init__(self, marker_id: int, z_loss: float = 0.0) -> None:
        super().__init__(z_loss)
        self.marker_id = marker_id

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        inputs = source[:, :-1]
        targets = torch.where(inputs == self.marker_id, source[:, 1:], IGNORE_INDEX)
        return {"inputs": inputs, "targets": targets}


@OBJECTIVES.register("equation_lm")
class EquationLmConfig(TokenPredictionConfig):
    """Causal LM trained on the token after each ``marker`` token only (an equation's answer)."""

    name: Literal["equation_lm"] = "equation_lm"
    attention: ClassVar[Attention] = "causal"
    needs_text: ClassVar[bool] = True
    marker: str = Field(default="=", min_length=1)  # the token whose next token is trained on

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> EquationLM:
        if text is None:
            raise ValueError(
                "equation_lm finds its marker token in the run's tokenizer; build it with a "
                "TextContext (objectives.context.text_context)"
            )
        marker_id = text.tokenizer.token_to_id(self.marker)
        if marker_id is None:
            raise ValueError(
                f"objective.marker {self.marker!r} is not a token of the run's tokenizer, so no "
                "target would be trained; use a token the corpus holds, such as '=' for the "
                "modular world"
            )
        return EquationLM(marker_id, self.z_loss)
