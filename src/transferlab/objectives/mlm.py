"""Masked language modelling (BERT): corrupt a random 15% of tokens, predict the originals.

Of the selected positions, 80% become the mask token, 10% a random regular token and 10% stay
as they are; the loss is taken on exactly the selected positions. Special tokens (bos, eos, pad,
mask) are never selected. Attention is bidirectional.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator

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


class MaskedLM(TokenPredictionObjective):
    attention = "bidirectional"

    def __init__(self, cfg: MlmConfig, special: SpecialTokenIds, vocab_size: int) -> None:
        super().__init__(cfg.z_loss)
        self.cfg = cfg
        self.special = special
        self.special_ids = torch.tensor(sorted(special.all))
        # Random replacements are drawn from the regular (non-special) ids, which follow the specials.
        self.first_regular_id = max(special.all) + 1
        self.vocab_size = vocab_size

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        tokens = source[:, :-1]
        shape = tokens.shape
        maskable = ~torch.isin(tokens, self.special_ids)
        selected = (torch.rand(shape, generator=generator) < self.cfg.mask_prob) & maskable
        # One uniform draw per position decides mask / random / keep among the selected.
        action = torch.rand(shape, generator=generator)
        to_mask = selected & (action < self.cfg.mask_token_frac)
        to_random = (
            selected
            & (action >= self.cfg.mask_token_frac)
            & (action < self.cfg.mask_token_frac + self.cfg.random_token_frac)
        )
        random_ids = torch.randint(
            self.first_regular_id, self.vocab_size, shape, generator=generator
        )
        inputs = torch.where(to_mask, self.special.mask, tokens)
        inputs = torch.where(to_random, random_ids, inputs)
        targets = torch.where(selected, tokens, IGNORE_INDEX)
        return {"inputs": inputs, "targets": targets}


@OBJECTIVES.register("mlm")
class MlmConfig(TokenPredictionConfig):
    name: Literal["mlm"] = "mlm"
    attention: ClassVar[Attention] = "bidirectional"
    mask_prob: float = Field(default=0.15, gt=0, le=1)  # share of tokens chosen as targets
    mask_token_frac: float = Field(default=0.8, ge=0, le=1)  # of those, replaced by <mask>
    # of those, replaced by a random token; the rest stay as they are
    random_token_frac: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _fractions_sum_to_at_most_one(self) -> MlmConfig:
        if self.mask_token_frac + self.random_token_frac > 1:
            raise ValueError("mask_token_frac + random_token_frac must be at most 1")
        return self

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> MaskedLM:
        return MaskedLM(self, special, vocab_size)
