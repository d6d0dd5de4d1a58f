"""Prefix language modelling: a random split point per row, the prefix read bidirectionally,
next-token loss only on the tokens after it.

A row is the window's ``L + 1`` tokens (``inputs = row[:-1]``, ``targets = row[1:]``). Its
split ``s`` is drawn per row, uniformly among the integers in
``[max(1, round(min_prefix * C)), min(C - 1, round(max_prefix * C))]`` over the row's ``C``
content tokens; the prefix is the first ``s`` of them, attended bidirectionally
(``prefix_len = s``), and the loss is on predicting the ``C - s`` content tokens after it (the
prefix's own tokens carry no loss, padding none either)::

    row      t0 t1 t2 | t3 t4 t5        s = 3 (C = 6, L = 5)
    inputs   t0 t1 t2   t3 t4           prefix_len = 3: t0..t2 see each other
    targets   -  - t3   t4 t5           loss on 3 positions

UL2's S denoiser is this objective with a mode token (``lead``) before the content: the row is
then ``[lead] + window[:L]``, the lead token is always in the prefix (``prefix_len = s + 1``)
and ``C = L``.
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


def split_range(content: int, min_prefix: float, max_prefix: float) -> tuple[int, int]:
    """The smallest and largest split over ``content`` tokens: at least one token before the
    split and one after it, whatever the fractions round to."""
    low = min(max(1, round(min_prefix * content)), content - 1)
    high = max(min(content - 1, round(max_prefix * content)), low)
    return low, high


class PrefixLM(TokenPredictionObjective):
    attention = "prefix"

    def __init__(
        self,
        cfg: PrefixLmConfig,
        special: SpecialTokenIds,
        lead: int | None = None,
    ) -> None:
        super().__init__(cfg.z_loss)
        self.min_prefix, self.max_prefix = cfg.min_prefix, cfg.max_prefix
        self.pad_id = special.pad
        self.lead = lead  # a token opening every row inside its prefix (UL2's mode token)

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        rows, n_lead = source, 0
        if self.lead is not None:
            lead = torch.full((len(source), 1), self.lead, dtype=source.dtype)
            rows, n_lead = torch.cat([lead, source[:, :-1]], dim=1), 1
        low, high = split_range(rows.shape[1] - n_lead, self.min_prefix, self.max_prefix)
        prefix_len = torch.randint(low, high + 1, (len(rows),), generator=generator) + n_lead
        inputs, targets = rows[:, :-1], rows[:, 1:].clone()
        # Position j predicts row[j + 1], a prefix token while j + 1 < prefix_len.
        in_prefix = torch.arange(inputs.shape[1])[None] < prefix_len[:, None] - 1
        targets[in_prefix | (targets == self.pad_id)] = IGNORE_INDEX
        return {"inputs": inputs, "targets": targets, "prefix_len": prefix_len}


@OBJECTIVES.register("prefix_lm")
class PrefixLmConfig(TokenPredictionConfig):
    name: Literal["prefix_lm"] = "prefix_lm"
    attention: ClassVar[Attention] = "prefix"
    min_prefix: float = Field(default=0.0, ge=0, le=1)  # shortest prefix, a share of the row
    max_prefix: float = Field(default=1.0, ge=0, le=1)  # longest prefix, a share of the row

    @model_validator(mode="after")
    def _range_is_ordered(self) -> PrefixLmConfig:
        if self.min_prefix > self.max_prefix:
            raise ValueError(
                f"min_prefix={self.min_prefix} exceeds max_prefix={self.max_prefix}; "
                "set min_prefix <= max_prefix"
            )
        return self

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> PrefixLM:
        return PrefixLM(self, special)
