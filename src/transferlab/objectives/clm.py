"""Causal language modelling: predict every next token under a causal mask."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

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


class CausalLM(TokenPredictionObjective):
    attention = "causal"

    def __init__(self, special: SpecialTokenIds, z_loss: float = 0.0) -> None:
        super().__init__(z_loss)
        self.pad_id = special.pad

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        inputs, targets = source[:, :-1], source[:, 1:].clone()
        targets[targets == self.pad_id] = IGNORE_INDEX
        return {"inputs": inputs, "targets": targets}


@OBJECTIVES.register("clm")
class ClmConfig(TokenPredictionConfig):
    name: Literal["clm"] = "clm"
    attention: ClassVar[Attention] = "causal"

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> CausalLM:
        return CausalLM(special, self.z_loss)
