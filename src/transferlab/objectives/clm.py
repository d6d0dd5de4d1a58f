"""Causal language modelling: predict every next token under a causal mask."""

from __future__ import annotations

from typing import Literal

import torch

from transferlab.config.registry import OBJECTIVES
from transferlab.config.schemas import ObjectiveConfig
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives.base import IGNORE_INDEX, Objective, ObjectiveBatch


class CausalLM(Objective):
    attention = "causal"

    def __init__(self, special: SpecialTokenIds) -> None:
        self.pad_id = special.pad

    def __call__(self, window: torch.Tensor, generator: torch.Generator) -> ObjectiveBatch:
        inputs, targets = window[:, :-1], window[:, 1:].clone()
        targets[targets == self.pad_id] = IGNORE_INDEX
        return ObjectiveBatch(inputs=inputs, targets=targets, attention="causal")


@OBJECTIVES.register("clm")
class ClmConfig(ObjectiveConfig):
    name: Literal["clm"] = "clm"

    def build(self, special: SpecialTokenIds, vocab_size: int) -> CausalLM:
        return CausalLM(special)
