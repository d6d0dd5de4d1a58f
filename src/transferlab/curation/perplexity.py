"""Perplexity filter: documents scored by a reference LM, kept by percentile band (CCNet).

CCNet splits a corpus into head, middle and tail by the perplexity of a language model trained
on a reference corpus (Wikipedia there; here any source, with a model transferlab trains itself,
see ``reference``): head is the most reference-like text. The buckets are percentile ranges of
the perplexities of the documents reaching the filter (``head_percentile``, ``tail_percentile``),
and ``keep`` names the buckets kept; alternatively ``band: [lo, hi]`` keeps the documents whose
percentile rank lies in [lo, hi). Ranks, not score values, decide, so a band keeps exactly its
share of the documents.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from transferlab.artifacts import content_key
from transferlab.config.base import BaseConfig
from transferlab.curation.reference import (
    ReferenceModel,
    ReferenceModelConfig,
    load_reference_model,
    reference_key,
)
from transferlab.curation.selection import Selection, rank_positions
from transferlab.objectives import IGNORE_INDEX

Bucket = Literal["head", "middle", "tail"]


class PerplexityConfig(BaseConfig):
    """``reference``: the model that scores; ``max_tokens``: tokens of a document scored (its
    start); the remaining fields select and are left out of the score key."""

    reference: ReferenceModelConfig
    max_tokens: int = Field(default=1024, gt=0)
    batch_size: int = Field(default=16, gt=0)  # windows the reference model scores at once
    # head: the documents of lowest perplexity, up to this percentile (most reference-like)
    head_percentile: float = Field(default=30, ge=0, le=100)
    # tail: the documents of highest perplexity, from this percentile on; middle: between
    tail_percentile: float = Field(default=60, ge=0, le=100)
    keep: list[Bucket] = Field(default_factory=lambda: ["head", "middle"], min_length=1)  # kept
    # [lo, hi]: keep the documents whose perplexity percentile rank is in [lo, hi) instead of
    # the buckets of keep; None: keep decides
    band: tuple[float, float] | None = None

    SELECTION_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"head_percentile", "tail_percentile", "keep", "band"}
    )

    @model_validator(mode="after")
    def _percentiles_ordered(self) -> PerplexityConfig:
        if self.head_percentile > self.tail_percentile:
            raise ValueError(
                f"perplexity.head_percentile={self.head_percentile} exceeds "
                f"tail_percentile={self.tail_percentile}; the head must come first"
            )
        if self.band is not None and not 0 <= self.band[0] < self.band[1] <= 100:
            raise ValueError(
                f"perplexity.band={list(self.band)} is not [lo, hi] with 0 <= lo < hi <= 100"
            )
        if len(set(self.keep)) != len(self.keep):
            raise ValueError(f"perplexity.keep={self.keep} names a bucket twice")
        return self

    def build(self) -> PerplexityFilter:
        return PerplexityFilter(self)


class PerplexityFilter:
    """Scores: per-token perplexity, ``exp`` of the mean next-token loss over the document's
    ``[bos] text [eos]`` tokens (its first ``max_tokens``), read in windows of the model's
    ``seq_len`` (each window starts afresh, without the previous one as context)."""

    name = "perplexity"
    metadata_key = "perplexity"
    label_key = "perplexity_bucket"

    def __init__(self, cfg: PerplexityConfig) -> None:
        self.cfg = cfg
        self._reference_key: str | None = None
        self._model: ReferenceModel | None = None

    def score_key(self) -> str:
        if self._reference_key is None:
            self._reference_key = reference_key(self.cfg.reference)
        scoring = self.cfg.to_dict()
        for name in self.cfg.SELECTION_FIELDS:
            scoring.pop(name)
        return content_key("perplexity", scoring, self._reference_key)

    def _reference(self) -> ReferenceModel:
        if self._model is None:
            self.score_key()  # the model's key, computed once
            self._model = load_reference_model(self.cfg.reference, self._reference_key)
        return self._model

    def score_texts(self, texts: list[str]) -> list[float]:
        ref = self._reference()
        special = ref.tokenizer.special
        windows, owners = [], []
        for index, ids in enumerate(ref.tokenizer.encode_batch(texts)):
            tokens = [special.bos, *ids, special.eos][: self.cfg.max_tokens + 1]
            for start in range(0, len(tokens) - 1, ref.seq_len):
                windows.append(tokens[start : start + ref.seq_len + 1])
                owners.append(index)
        loss_sum = torch.zeros(len(texts), dtype=torch.float64)
        count = torch.zeros(len(texts), dtype=torch.float64)
        owner_ids = torch.tensor(owners)
        with torch.no_grad():
            for first in range(0, len(windows), self.cfg.batch_size):
                rows = windows[first : first + self.cfg.batch_size]
                inputs, targets = _pad(rows, special.pad)
                logits = ref.model(inputs)
                losses = F.cross_entropy(
                    logits.flatten(0, 1),
                    targets.flatten(),
                    ignore_index=IGNORE_INDEX,
                    reduction="none",
                ).view(targets.shape)
                row_owner = owner_ids[first : first + len(rows)]
                loss_sum.index_add_(0, row_owner, losses.sum(1).double())
                count.index_add_(0, row_owner, (targets != IGNORE_INDEX).sum(1).double())
        return [math.exp(s / c) for s, c in zip(loss_sum.tolist(), count.tolist(), strict=True)]

    def select(self, scores: np.ndarray) -> Selection:
        n = len(scores)
        ranks = rank_positions(scores)
        head_end = self.cfg.head_percentile / 100 * n
        tail_start = self.cfg.tail_percentile / 100 * n
        labels = [_bucket(rank, head_end, tail_start) for rank in ranks]
        if self.cfg.band is not None:
            lo, hi = (p / 100 * n for p in self.cfg.band)
            keep = (ranks >= lo) & (ranks < hi)
        else:
            keep = np.array([label in self.cfg.keep for label in labels], dtype=bool)
        details = {
            "head_max_perplexity": _value_at(scores, ranks, math.ceil(head_end) - 1),
            "tail_min_perplexity": _value_at(scores, ranks, math.ceil(tail_start)),
            "keep": list(self.cfg.keep) if self.cfg.band is None else None,
            "band": list(self.cfg.band) if self.cfg.band is not None else None,
        }
        return Selection(keep, labels, details)


def _bucket(rank: int, head_end: float, tail_start: float) -> Bucket:
    if rank < head_end:
        return "head"
    return "tail" if rank >= tail_start else "middle"


def _value_at(scores: np.ndarray, ranks: np.ndarray, rank: int) -> float | None:
    """The score of rank ``rank``, or None when there is no such rank."""
    hits = np.flatnonzero(ranks == rank)
    return float(scores[hits[0]]) if hits.size else None


def _pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) [B, L] of windows of up to L + 1 tokens; targets -100 past each end."""
    length = max(len(r) for r in rows) - 1
    inputs = torch.full((len(rows), length), pad, dtype=torch.long)
    targets = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        inputs[i, : len(row) - 1] = torch.tensor(row[:-1])
        targets[i, : len(row) - 1] = torch.tensor(row[1:])
    return inputs, targets
