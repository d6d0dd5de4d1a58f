"""Log-likelihood of choices given a context: the batched core of multiple-choice scoring.

Choices that share everything but their last token (single-token answers, above all) share one
forward pass: the sequence ``context + choice[:-1]`` (a "stem") is run once, the log-probs of the
shared choice tokens are read along it, and each choice's last token is read from the stem's
final position. Stems are batched longest first with right padding: in a causal model a position
never sees the positions after it, so padding on the right changes no score. With
``attention="prefix"`` the context is the model's bidirectional prefix and the choice is read
causally after it; the prefix ends before the padding, so padding changes no score there either.
Only the positions that predict a choice token are normalized (``log_softmax`` over the
vocabulary), not the whole sequence. ``score_continuations`` also says whether each choice is the
greedy continuation (every token the argmax where it is predicted), which lm-evaluation-harness's
``loglikelihood`` requests return beside the log-likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from transferlab.evaluate.inference import length_batches, model_device

Request = tuple[Sequence[int], Sequence[Sequence[int]]]  # (context ids, [choice ids, ...])


@dataclass(frozen=True)
class Scored:
    """One choice's summed log-likelihood, and whether greedy decoding would produce it."""

    logprob: float
    greedy: bool


@dataclass
class _Stem:
    """``context + shared choice prefix``, run once for every choice that continues it."""

    ids: list[int]
    context_len: int
    # (request, choice, last token of the choice) of each choice ending right after the stem
    members: list[tuple[int, int, int]] = field(default_factory=list)


def score_choices(
    model: nn.Module,
    requests: Sequence[Request],
    batch_size: int = 32,
    pad_id: int = 0,
    attention: Literal["causal", "prefix"] = "causal",
) -> list[list[float]]:
    """Summed log p(choice tokens | context) for every choice of every request.

    ``model(input_ids)`` must return causal logits [B, L, V]; with ``attention="prefix"`` it is
    called as ``model(input_ids, attention="prefix", prefix_len=<context lengths>)``. Returns one
    list per request with one float per choice, in the order given; the result does not depend
    on ``batch_size`` (beyond float rounding).
    """
    scored = score_continuations(model, requests, batch_size, pad_id, attention)
    return [[choice.logprob for choice in choices] for choices in scored]


def score_continuations(
    model: nn.Module,
    requests: Sequence[Request],
    batch_size: int = 32,
    pad_id: int = 0,
    attention: Literal["causal", "prefix"] = "causal",
) -> list[list[Scored]]:
    """``score_choices`` with, per choice, whether it is the greedy continuation too."""
    stems = _stems(requests)
    scores: list[list[Scored]] = [[Scored(0.0, False)] * len(choices) for _, choices in requests]
    device = model_device(model)
    with torch.inference_mode():
        for rows in length_batches([len(stem.ids) for stem in stems], batch_size):
            batch = [stems[i] for i in rows]
            member_scores = _score_stems(model, batch, pad_id, device, attention)
            for stem, totals in zip(batch, member_scores, strict=True):
                for (request, choice, _), total in zip(stem.members, totals, strict=True):
                    scores[request][choice] = total
    return scores


def check_requests(requests: Sequence[Request]) -> None:
    """A one-line error for the first request with no context, no choice or an empty choice."""
    for r, (context, choices) in enumerate(requests):
        if not context:
            raise ValueError(f"request {r} has an empty context; start it with <bos>")
        if not choices or any(not choice for choice in choices):
            raise ValueError(f"request {r} has no choices or an empty choice; give token ids")


def _stems(requests: Sequence[Request]) -> list[_Stem]:
    """Group every (request, choice) under its stem ``context + choice[:-1]``.

    Stems are keyed by their context length too: the same ids split differently into context
    and choice score different tokens (and, with prefix attention, attend differently)."""
    check_requests(requests)
    stems: dict[tuple[int, tuple[int, ...]], _Stem] = {}
    for r, (context, choices) in enumerate(requests):
        for c, choice in enumerate(choices):
            ids = (*context, *choice[:-1])
            stem = stems.setdefault((len(context), ids), _Stem(list(ids), len(context)))
            stem.members.append((r, c, choice[-1]))
    return list(stems.values())


def _score_stems(
    model: nn.Module, stems: Sequence[_Stem], pad_id: int, device: torch.device, attention: str
) -> list[list[Scored]]:
    """Per stem, each member choice's summed log-prob (shared prefix + its last token) and
    whether every one of its tokens is the argmax where it is predicted."""
    width = max(len(stem.ids) for stem in stems)
    inputs = torch.full((len(stems), width), pad_id, dtype=torch.long)
    for b, stem in enumerate(stems):
        inputs[b, : len(stem.ids)] = torch.tensor(stem.ids, dtype=torch.long)
    if attention == "prefix":
        prefix_len = torch.tensor([stem.context_len for stem in stems], device=device)
        logits = model(inputs.to(device), attention="prefix", prefix_len=prefix_len)
    else:  # a plain call: any causal LM (a wrapper, an HF model) can be scored
        logits = model(inputs.to(device))
    out = []
    for b, stem in enumerate(stems):
        # Position i predicts token i + 1: the shared choice tokens ids[context_len:] are
        # predicted from positions context_len - 1 .. end - 2, each last token from end - 1.
        end = len(stem.ids)
        logprobs = logits[b, stem.context_len - 1 : end].float().log_softmax(-1).double().cpu()
        shared_targets = torch.tensor(stem.ids[stem.context_len :], dtype=torch.long)
        shared = logprobs[:-1].gather(-1, shared_targets[:, None]).sum()
        shared_greedy = bool((logprobs[:-1].argmax(-1) == shared_targets).all())
        best_last = int(logprobs[-1].argmax())
        out.append(
            [
                Scored(float(shared + logprobs[-1, token]), shared_greedy and token == best_last)
                for _, _, token in stem.members
            ]
        )
    return out
