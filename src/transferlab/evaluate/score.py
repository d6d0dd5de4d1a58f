"""Log-likelihood of choices given a context: the batched core of multiple-choice scoring.

Every (context, choice) pair becomes one sequence ``context + choice``. Sequences are sorted by
length, longest first (a batch then holds sequences of similar length, so little padding, and an
out-of-memory shows on the first batch), and batched with right padding: in a causal model a
position never sees the positions after it, so padding on the right changes no score. A context
is tokenized once and shared by its choices. Only the positions that predict a choice token are
normalized (``log_softmax`` over the vocabulary), not the whole sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transferlab.evaluate.base import model_device

IGNORE = -100
Request = tuple[Sequence[int], Sequence[Sequence[int]]]  # (context ids, [choice ids, ...])


def score_choices(
    model: nn.Module, requests: Sequence[Request], batch_size: int = 32, pad_id: int = 0
) -> list[list[float]]:
    """Summed log p(choice tokens | context) for every choice of every request.

    ``model(input_ids)`` must return causal logits [B, L, V]. Returns one list per request with
    one float per choice, in the order given; the result does not depend on ``batch_size``
    (beyond float rounding).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    sequences, context_lens, owners = _flatten(requests)
    scores = [[0.0] * len(choices) for _, choices in requests]
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    device = model_device(model)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            inputs, targets = _pad_batch(
                [sequences[i] for i in rows], [context_lens[i] for i in rows], pad_id
            )
            sums = _summed_logprobs(model, inputs.to(device), targets.to(device))
            for row, total in zip(rows, sums.tolist(), strict=True):
                request, choice = owners[row]
                scores[request][choice] = total
    return scores


def _flatten(
    requests: Sequence[Request],
) -> tuple[list[list[int]], list[int], list[tuple[int, int]]]:
    """(sequences, context length of each, (request, choice) of each)."""
    sequences, context_lens, owners = [], [], []
    for r, (context, choices) in enumerate(requests):
        if not context:
            raise ValueError(f"request {r} has an empty context; start it with <bos>")
        if not choices or any(not choice for choice in choices):
            raise ValueError(f"request {r} has no choices or an empty choice; give token ids")
        for c, choice in enumerate(choices):
            sequences.append([*context, *choice])
            context_lens.append(len(context))
            owners.append((r, c))
    return sequences, context_lens, owners


def _pad_batch(
    sequences: Sequence[Sequence[int]], context_lens: Sequence[int], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs ``seq[:-1]`` and targets ``seq[1:]`` kept only on choice tokens."""
    width = max(len(seq) for seq in sequences) - 1
    inputs = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    targets = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
    for b, (seq, context_len) in enumerate(zip(sequences, context_lens, strict=True)):
        ids = torch.tensor(seq, dtype=torch.long)
        inputs[b, : len(seq) - 1] = ids[:-1]
        # Position i predicts token i + 1: the choice tokens seq[context_len:] are predicted
        # from positions context_len - 1 .. len(seq) - 2.
        targets[b, context_len - 1 : len(seq) - 1] = ids[context_len:]
    return inputs, targets


def _summed_logprobs(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per row, the sum over non-ignored positions of log p(target) (float64)."""
    logits = model(inputs)
    scored = targets != IGNORE
    rows = scored.nonzero()[:, 0]
    token_logprobs = (
        logits[scored].float().log_softmax(-1).gather(-1, targets[scored][:, None]).squeeze(-1)
    )
    sums = torch.zeros(inputs.shape[0], dtype=torch.float64, device=inputs.device)
    return sums.index_add_(0, rows, token_logprobs.double())
