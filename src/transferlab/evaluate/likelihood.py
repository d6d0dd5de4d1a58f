"""Likelihood of whole texts, for the tasks that report bits per byte (``code_likelihood``,
``text_likelihood``).

A text longer than the model's window is scored as lm-evaluation-harness's
``loglikelihood_rolling`` does it (``get_rolling_token_windows`` with ``context_len=1``, then
``make_disjoint_window``): disjoint windows of ``window`` predicted tokens, every token of the
text predicted exactly once. The first window predicts the first ``window`` tokens after
``<bos>``; each later window predicts the next ``window`` tokens (fewer in the last) from an
input of ``window`` tokens that ends right before its last predicted token, so a token is
conditioned on the tokens before it within its window (at most ``window - 1`` of them; the
last window, being shorter, reaches further back). Each window is one scoring request, so the
reader's batching (and its prefix reading) applies unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.evaluate.readers import Reader
from transferlab.evaluate.score import Request


def bits_per_byte(logprob: float, text: str) -> float:
    """Bits per UTF-8 byte of ``text`` given its natural-log probability ``logprob``."""
    return -logprob / math.log(2) / max(len(text.encode("utf-8")), 1)


def rolling_windows(ids: Sequence[int], bos: int, window: int) -> list[Request]:
    """The (context, [continuation]) requests that score every token of ``ids`` once, each
    request ``window`` tokens long once its context and continuation are joined (less for a
    short text)."""
    if window < 1:
        raise ValueError(f"window={window}: a window must hold at least one token")
    ids = list(ids)
    first = min(window, len(ids))
    requests: list[Request] = [([bos], [ids[:first]])] if ids else []
    end = first
    while end < len(ids):
        stop = min(end + window, len(ids))
        # The input ids[stop - window - 1 : stop - 1] holds the predicted ids[end:stop] at its
        # end; what comes before them is the context (one token for a full window).
        requests.append((ids[stop - window - 1 : end], [ids[end:stop]]))
        end = stop
    return requests


def text_logprobs(
    reader: Reader,
    model: nn.Module,
    texts: Sequence[Sequence[int]],
    special: SpecialTokenIds,
    window: int,
    batch_size: int,
) -> list[float]:
    """Natural-log probability of each token sequence in ``texts`` after ``<bos>``, summed
    over its rolling windows (all texts' windows are scored in one batched pass)."""
    requests, owners = [], []
    for t, ids in enumerate(texts):
        windows = rolling_windows(ids, special.bos, window)
        requests += windows
        owners += [t] * len(windows)
    totals = [0.0] * len(texts)
    scores = reader.score_choices(model, requests, special, batch_size)
    for owner, (score,) in zip(owners, scores, strict=True):
        totals[owner] += score
    return totals
