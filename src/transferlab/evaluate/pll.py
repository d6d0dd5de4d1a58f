"""Pseudo-log-likelihood of choices under a bidirectional model (Salazar et al., 2020, "Masked
Language Model Scoring").

A choice's score is the sum over its tokens of log p(token) read at the token's position when
that token alone is replaced by ``<mask>`` in the full sequence ``context + choice``, with
bidirectional attention. It is what a masked LM can say about a choice, but not a likelihood: the
scores of all possible choices do not sum to one, so it ranks choices and is no bits per byte.

A choice of m tokens needs m masked sequences. Identical masked sequences (choices that differ
only in the masked token, e.g. every single-token answer of a question) are run once and read for
each of them. Bidirectional attention would let every position see right padding (the model has
no padding mask), so a batch holds masked sequences of one length only and needs no padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transferlab.evaluate.inference import length_batches, model_device
from transferlab.evaluate.score import Request, check_requests

# (request, choice, original token) of each choice that masks a given sequence at a position
Members = list[tuple[int, int, int]]


def pseudo_log_likelihood(
    model: nn.Module, requests: Sequence[Request], mask_id: int, batch_size: int = 32
) -> list[list[float]]:
    """Summed log p(token | everything else) over each choice's tokens, for every choice of every
    request (one list per request, one float per choice, in the order given).

    ``model(input_ids, attention="bidirectional")`` must return logits [B, L, V]. The result does
    not depend on ``batch_size`` (beyond float rounding).
    """
    check_requests(requests)
    masked = _masked_sequences(requests, mask_id)
    keys = list(masked)
    scores = [[0.0] * len(choices) for _, choices in requests]
    device = model_device(model)
    with torch.inference_mode():
        for rows in length_batches([len(ids) for _, ids in keys], batch_size, same_length=True):
            inputs = torch.tensor([keys[i][1] for i in rows], device=device)
            positions = torch.tensor([keys[i][0] for i in rows], device=device)
            logits = model(inputs, attention="bidirectional")
            picked = logits[torch.arange(len(rows), device=device), positions]
            logprobs = picked.float().log_softmax(-1).double().cpu()
            for b, i in enumerate(rows):
                for request, choice, token in masked[keys[i]]:
                    scores[request][choice] += float(logprobs[b, token])
    return scores


def _masked_sequences(
    requests: Sequence[Request], mask_id: int
) -> dict[tuple[int, tuple[int, ...]], Members]:
    """(masked position, masked ``context + choice``) -> the choices read from it."""
    masked: dict[tuple[int, tuple[int, ...]], Members] = {}
    for r, (context, choices) in enumerate(requests):
        for c, choice in enumerate(choices):
            ids = (*context, *choice)
            for pos in range(len(context), len(ids)):
                key = (pos, (*ids[:pos], mask_id, *ids[pos + 1 :]))
                masked.setdefault(key, []).append((r, c, ids[pos]))
    return masked
