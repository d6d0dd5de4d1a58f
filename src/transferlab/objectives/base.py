"""The interface every pretraining objective implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

IGNORE_INDEX = -100  # targets equal to this carry no loss (torch cross_entropy's ignore_index)

Attention = Literal["causal", "bidirectional", "prefix"]


@dataclass(frozen=True)
class ObjectiveBatch:
    """Model inputs, per-position targets and the attention pattern the objective needs."""

    inputs: torch.Tensor  # [B, L] token ids
    targets: torch.Tensor  # [B, L] token ids, IGNORE_INDEX where no loss is taken
    attention: Attention
    prefix_len: torch.Tensor | None = None  # [B], only for attention == "prefix"

    @property
    def n_loss_tokens(self) -> int:
        return int((self.targets != IGNORE_INDEX).sum())


class Objective:
    """Turns packed token windows [B, L+1] into an ObjectiveBatch.

    Randomness (masking, corruption) comes only from the ``generator`` argument, which the trainer
    seeds from (run seed, step, micro step): an objective holds no random state, so a resumed run
    draws exactly the same masks as an uninterrupted one.
    """

    attention: Attention = "causal"

    def __call__(self, window: torch.Tensor, generator: torch.Generator) -> ObjectiveBatch:
        raise NotImplementedError
