"""Fine-tuning on (prompt, answer) pairs with the loss on the answer only.

A training sequence is ``prompt + answer`` (the prompt opens with ``<bos>``, the answer closes
with ``<eos>``). Inputs are ``seq[:-1]`` and targets ``seq[1:]``, so position ``i`` predicts
token ``i + 1``; targets are kept on the answer tokens and the ``<eos>`` (positions
``len(prompt) - 1 .. len(seq) - 2``) and set to IGNORE_INDEX on the prompt and the right padding.
The batch source yields lists of pairs; attention is causal (the model generates the answer).
"""

from __future__ import annotations

from collections.abc import Sequence
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

Pair = tuple[Sequence[int], Sequence[int]]  # (prompt ids, answer ids ending in <eos>)


def answer_loss_batch(pairs: Sequence[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (inputs, targets) [B, L] with targets only on answer tokens (see module)."""
    width = max(len(prompt) + len(answer) for prompt, answer in pairs) - 1
    inputs = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    targets = torch.full((len(pairs), width), IGNORE_INDEX, dtype=torch.long)
    for b, (prompt, answer) in enumerate(pairs):
        if not prompt or not answer:
            raise ValueError(f"pair {b} has an empty prompt or answer; both need tokens")
        seq = torch.tensor([*prompt, *answer], dtype=torch.long)
        inputs[b, : len(seq) - 1] = seq[:-1]
        targets[b, len(prompt) - 1 : len(seq) - 1] = seq[len(prompt) :]
    return inputs, targets


class AnswerLM(TokenPredictionObjective):
    attention = "causal"

    def __init__(self, pad_id: int, z_loss: float = 0.0) -> None:
        super().__init__(z_loss)
        self.pad_id = pad_id

    def make_batch(self, source: Sequence[Pair], generator: torch.Generator) -> Batch:
        inputs, targets = answer_loss_batch(source, self.pad_id)
        return {"inputs": inputs, "targets": targets}


@OBJECTIVES.register("answer_lm")
class AnswerLmConfig(TokenPredictionConfig):
    name: Literal["answer_lm"] = "answer_lm"
    attention: ClassVar[Attention] = "causal"

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> AnswerLM:
        return AnswerLM(special.pad, self.z_loss)
