"""Random noise spans as T5 draws them (Raffel et al. 2020, ``random_spans_noise_mask``).

Over ``n`` tokens, the number of noise tokens and of noise spans are fixed by the noise density
and the mean span length (``span_counts``); only where the spans lie is random. The sequence
alternates kept and noise segments, starting with a kept one (so it also ends with noise, as
in T5), and every way of splitting the kept and the noise tokens into that many non-empty
segments is equally likely (``random_segmentation``). Span corruption and UL2's R and X
denoisers draw their masks with ``rolled_noise_mask``: T5's mask rotated by a uniform offset (as
seqio's ``random_roll``), since T5's own always ends in noise and, with a single span (short
rows at a low density), is not random at all; a span that wraps around the end is then two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SpanNoise:
    """What share of the tokens is noise, in spans of what mean length."""

    noise_density: float  # in (0, 1)
    mean_span_length: float  # >= 1


def span_counts(n: torch.Tensor, noise: SpanNoise) -> tuple[torch.Tensor, torch.Tensor]:
    """(noise tokens, noise spans) over ``n`` tokens, elementwise for a tensor of lengths.

    As T5: ``round(n * density)`` noise tokens, at least 1 and at most ``n - 1``, in
    ``round(noise / mean_span_length)`` spans, at least 1. Also at most ``n - noise`` spans, so
    that each span has a kept segment before it; none under 2 tokens (nothing to keep).
    """
    n = n.long()
    tokens = torch.round(n.double() * noise.noise_density).long()
    tokens = torch.minimum(tokens.clamp(min=1), n - 1).clamp(min=0)
    spans = torch.round(tokens.double() / noise.mean_span_length).long().clamp(min=1)
    spans = torch.minimum(spans, n - tokens)
    return tokens, torch.where(tokens > 0, spans, 0)


def random_segmentation(items: int, segments: int, generator: torch.Generator) -> torch.Tensor:
    """Lengths of ``segments`` non-empty segments that add up to ``items``: a uniformly drawn
    set of ``segments - 1`` cut points among the ``items - 1`` gaps between items."""
    cuts = torch.randperm(items - 1, generator=generator)[: segments - 1] + 1
    bounds = torch.cat([torch.tensor([0]), cuts.sort().values, torch.tensor([items])])
    return bounds.diff()


def spans_mask(n: int, tokens: int, spans: int, generator: torch.Generator) -> torch.Tensor:
    """A bool mask [n] of ``tokens`` noise tokens in ``spans`` spans, alternating with as many
    kept segments, a kept one first; all False when ``tokens`` is 0."""
    if tokens == 0:
        return torch.zeros(n, dtype=torch.bool)
    noise_lengths = random_segmentation(tokens, spans, generator)
    kept_lengths = random_segmentation(n - tokens, spans, generator)
    lengths = torch.stack([kept_lengths, noise_lengths], dim=1).flatten()
    return torch.tensor([False, True]).repeat(spans).repeat_interleave(lengths)


def random_spans_noise_mask(n: int, noise: SpanNoise, generator: torch.Generator) -> torch.Tensor:
    """T5's mask [n]: True at the noise tokens, in the counts of ``span_counts``; all False
    under 2 tokens."""
    tokens, spans = (int(v) for v in span_counts(torch.tensor(n), noise))
    return spans_mask(n, tokens, spans, generator)


def rolled_noise_mask(n: int, tokens: int, spans: int, generator: torch.Generator) -> torch.Tensor:
    """``spans_mask`` rotated right by an offset drawn uniformly in ``[0, n)``."""
    mask = spans_mask(n, tokens, spans, generator)
    if n == 0:
        return mask
    return mask.roll(int(torch.randint(n, (1,), generator=generator)))
