"""Span corruption (T5, Raffel et al. 2020) in its decoder-only form: the corrupted text is the
bidirectional prefix, the spans it lost follow it as targets.

From a raw chunk of the window, noise spans are drawn as in T5 (``objectives.spans``, over the
chunk's regular tokens). Each span is replaced in the input by its own sentinel
(``<extra_id_0>``, ``<extra_id_1>``, ... in order) and the targets are the sentinels each followed
by its span. The row is ``[corrupted chunk] + [targets]``, padded to the window's ``L + 1``
tokens; the prefix is the corrupted chunk and the loss is on the targets only::

    chunk    a b c d e f g             noise: c d, g
    row      a b <X0> e f <X1> | <X0> c d <X1> g  pad ...
    inputs   a b <X0> e f <X1>   <X0> c d <X1> g ...     prefix_len = 6
    targets  - - -    - - <X0>   c    d <X1> g   - ...   loss on the 5 target tokens

Special tokens (bos, eos, pad) are never noise: the noise is drawn over the chunk's regular
tokens alone (T5's mask, rotated by a random offset: ``spans.rolled_noise_mask``), and a span
that would cross a document boundary (a bos/eos between two of its tokens) is cut there into two
spans, each with its own sentinel; so is a span that wraps around the chunk's end. Rows are
fixed length: the chunk is the longest start of the window whose row fits ``L + 1`` tokens even
if every document boundary in it and the wrap cut a span (``R + 2 * (spans + boundaries + 1)
<= L + 1``) and that never needs more than ``num_sentinels`` sentinels; the window's tokens
after the chunk are not used and the row's unused end is padding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

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
from transferlab.objectives.spans import SpanNoise, rolled_noise_mask, span_counts

if TYPE_CHECKING:
    from transferlab.config import RunConfig


def sentinel_tokens(count: int) -> tuple[str, ...]:
    """T5's sentinel names, ``<extra_id_0>`` first."""
    return tuple(f"<extra_id_{i}>" for i in range(count))


def chunk_length(
    regular: torch.Tensor, budget: int, noise: SpanNoise, max_spans: int
) -> torch.Tensor:
    """The length of the longest chunk ``row[:R]`` of each row (``regular`` [..., n]: which
    tokens are not special) whose corrupted input and targets fit ``budget`` tokens with at
    most ``max_spans`` spans, counting one more span for every boundary a span could be cut at
    and one for the span that may wrap around the chunk's end (``spans.rolled_noise_mask``)."""
    n_regular = regular.long().cumsum(-1)  # regular tokens in row[:R] at index R - 1
    after_gap = regular.clone()
    after_gap[..., 1:] &= ~regular[..., :-1]
    after_gap &= n_regular > 1  # a regular token after specials, with regular tokens before
    spans = span_counts(n_regular, noise)[1]
    spans = spans + (spans > 0).long() + after_gap.long().cumsum(-1)
    need = torch.arange(1, regular.shape[-1] + 1) + 2 * spans  # both grow with R
    return ((need <= budget) & (spans <= max_spans)).sum(-1)


def needed_sentinels(seq_len: int, noise: SpanNoise, n_lead: int = 0) -> int:
    """The spans of a row of ``seq_len`` regular tokens (no document boundary), one of them
    maybe cut in two by wrapping around: the fewest sentinels a run of that length needs."""
    regular = torch.ones(seq_len + 1, dtype=torch.bool)
    length = chunk_length(regular, seq_len + 1 - n_lead, noise, seq_len)
    return int(span_counts(length, noise)[1]) + 1


def check_sentinels(
    noise: SpanNoise, seq_len: int, num_sentinels: int, what: str, n_lead: int = 0
) -> None:
    """Refuse a ``num_sentinels`` too small for rows of ``seq_len`` tokens, which would shorten
    every row's chunk to fit the sentinels."""
    needed = needed_sentinels(seq_len, noise, n_lead)
    if needed > num_sentinels:
        raise ValueError(
            f"{what} at data.seq_len={seq_len} needs {needed} sentinels per row but "
            f"num_sentinels={num_sentinels}; set num_sentinels to at least {needed} "
            "or lower data.seq_len"
        )


class SpanCorruption(TokenPredictionObjective):
    attention = "prefix"

    def __init__(
        self,
        noise: SpanNoise,
        special: SpecialTokenIds,
        sentinel_ids: torch.Tensor,
        lead: int | None = None,
        z_loss: float = 0.0,
    ) -> None:
        super().__init__(z_loss)
        self.noise = noise
        self.pad_id = special.pad
        self.special_ids = torch.tensor(sorted(special.all))
        self.sentinel_ids = sentinel_ids
        self.lead = lead  # a token opening every row inside its prefix (UL2's mode token)

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        n_lead = 0 if self.lead is None else 1
        regular = ~torch.isin(source, self.special_ids)
        lengths = chunk_length(
            regular, source.shape[1] - n_lead, self.noise, len(self.sentinel_ids)
        )
        regular &= torch.arange(source.shape[1])[None] < lengths[:, None]  # within the chunk
        tokens, spans = span_counts(regular.sum(-1), self.noise)
        rows = torch.full(source.shape, self.pad_id, dtype=source.dtype)
        prefix_len, n_targets = [], []
        for k, length in enumerate(lengths.tolist()):
            row, prefix, count = self._row(
                source[k, :length], regular[k, :length], int(tokens[k]), int(spans[k]), generator
            )
            rows[k, : len(row)] = row
            prefix_len.append(prefix)
            n_targets.append(count)
        positions = torch.arange(rows.shape[1] - 1)[None]
        first = torch.tensor(prefix_len)[:, None] - 1  # predicts the first target token
        inputs, targets = rows[:, :-1], rows[:, 1:].clone()
        loss_at = (positions >= first) & (positions < first + torch.tensor(n_targets)[:, None])
        targets[~loss_at] = IGNORE_INDEX
        return {"inputs": inputs, "targets": targets, "prefix_len": torch.tensor(prefix_len)}

    def _row(
        self,
        chunk: torch.Tensor,
        regular: torch.Tensor,
        tokens: int,
        spans: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, int, int]:
        """A row before its padding, its prefix length and its number of target tokens, from
        its chunk with ``tokens`` noise tokens in ``spans`` spans over its ``regular`` tokens."""
        lead = [] if self.lead is None else [self.lead]
        noise = torch.zeros(len(chunk), dtype=torch.bool)
        noise[regular] = rolled_noise_mask(int(regular.sum()), tokens, spans, generator)
        starts = noise.clone()
        starts[1:] &= ~noise[:-1]  # a span starts where noise follows a kept token
        sentinels = self.sentinel_ids[(starts.long().cumsum(0) - 1).clamp(min=0)]
        # The input keeps the kept tokens and puts each span's sentinel at its first token.
        corrupted = torch.where(starts, sentinels, chunk)[~noise | starts]
        # The targets are, per noise token, its span's sentinel first if it opens the span.
        pairs = torch.stack([torch.where(starts, sentinels, -1), chunk], dim=1)[noise].flatten()
        targets = pairs[pairs >= 0]
        row = torch.cat([torch.tensor(lead, dtype=chunk.dtype), corrupted, targets])
        return row, len(lead) + len(corrupted), len(targets)


@OBJECTIVES.register("span_corruption")
class SpanCorruptionConfig(TokenPredictionConfig):
    name: Literal["span_corruption"] = "span_corruption"
    attention: ClassVar[Attention] = "prefix"
    noise_density: float = Field(default=0.15, gt=0, lt=1)  # share of regular tokens in spans
    mean_span_length: float = Field(default=3.0, ge=1)  # mean tokens per noise span
    num_sentinels: int = Field(default=100, ge=1)  # sentinel tokens added (T5: 100)

    @property
    def noise(self) -> SpanNoise:
        return SpanNoise(self.noise_density, self.mean_span_length)

    def added_tokens(self) -> tuple[str, ...]:
        return sentinel_tokens(self.num_sentinels)

    def check(self, run: RunConfig) -> None:
        check_sentinels(self.noise, run.data.seq_len, self.num_sentinels, "span_corruption")

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> SpanCorruption:
        sentinels = torch.arange(vocab_size, vocab_size + self.num_sentinels)
        return SpanCorruption(self.noise, special, sentinels, z_loss=self.z_loss)
