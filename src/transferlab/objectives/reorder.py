"""Causal language modelling on windows whose texts are partly rearranged (reverse, permutation).

A packed window holds several texts: the runs of regular tokens between special tokens (a
document between its ``<bos>`` and ``<eos>``, or the part of one the window cut). Each text is
rearranged with probability ``fraction``, decided by one uniform draw per window position read
at the text's first token (a second draw per position serves random orders), so the result is a
pure function of the step's generator; special tokens stay where they are. The loss is clm on
the rearranged window: the targets are the rearranged sequence shifted by one, so over the run
the model reads each text in both orders.

Rearranging a whole text (a document in pretraining) follows Golovneva et al. (2024), who reverse
each training sample; a window's texts are the samples the packing left whole or cut.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

import numpy as np
import torch

from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives.base import Batch
from transferlab.objectives.clm import CausalLM
from transferlab.objectives.context import TextContext
from transferlab.objectives.entities import EntityLexicon

# What an objective that needs entity names does on text without any (real text).
WithoutEntities = Literal["error", "words"]


class ReorderLM(CausalLM):
    """Clm on windows whose texts are rearranged by ``rearrange`` with probability
    ``fraction``; subclasses say how a text is rearranged."""

    def __init__(self, special: SpecialTokenIds, fraction: float, z_loss: float = 0.0) -> None:
        super().__init__(special, z_loss)
        self.fraction = fraction
        self.special_ids = np.array(sorted(special.all))

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        # Two uniform draws per position: the first, at a text's first token, decides whether
        # the text is rearranged; the second gives each position a key a random order sorts by.
        chosen, keys = torch.rand((2, *source.shape), generator=generator).numpy()
        chosen = chosen < self.fraction
        tokens = source.numpy()
        window = source.clone()
        for row, start, end in text_spans(tokens, self.special_ids):
            if chosen[row, start]:
                text = self.rearrange(tokens[row, start:end], keys[row, start:end])
                window[row, start:end] = torch.from_numpy(text)
        return super().make_batch(window, generator)

    @abstractmethod
    def rearrange(self, text: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``text`` (token ids, specials excluded) rearranged, of the same length; ``keys`` are
        uniform draws, one per token, for a rearrangement that is random."""


def text_spans(tokens: np.ndarray, special_ids: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, start, end) of every run of non-special tokens in ``tokens`` [B, T], row-major."""
    regular = np.pad(~np.isin(tokens, special_ids), ((0, 0), (1, 1)))
    edges = np.diff(regular.astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return list(zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True))


def entity_lexicon(
    objective: str, text: TextContext, without_entities: WithoutEntities
) -> EntityLexicon | None:
    """The lexicon of ``text``'s entities; None (words only) when there are none and the
    config falls back to words, else a one-line error naming both ways out."""
    if text.entities:
        return EntityLexicon(text.tokenizer, text.entities)
    if without_entities == "words":
        return None
    raise ValueError(
        f"objective {objective} needs entity names, and this run's text has none (only a world "
        "such as bios declares them); set objective.without_entities: words to use words instead"
    )


def require_text(objective: str, text: TextContext | None) -> TextContext:
    if text is None:
        raise ValueError(
            f"objective {objective} reads the text: build it with a TextContext "
            "(objectives.context.text_context)"
        )
    return text
