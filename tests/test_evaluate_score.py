"""``score_choices`` equals a naive per-choice computation, whatever the batching."""

from __future__ import annotations

import random

import pytest
import torch

from transferlab.config import ModelConfig
from transferlab.evaluate.score import score_choices
from transferlab.models import build_model

VOCAB = 40


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    # A larger init makes the distribution far from uniform, so mistakes would show.
    cfg = ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=2, init_std=0.3)
    return build_model(cfg)


def _requests(seed: int) -> list[tuple[list[int], list[list[int]]]]:
    rng = random.Random(seed)
    requests = []
    for _ in range(7):
        context = [1] + [rng.randrange(4, VOCAB) for _ in range(rng.randrange(0, 9))]
        n_choices = rng.randrange(1, 5)
        choices = [
            [rng.randrange(4, VOCAB) for _ in range(rng.randrange(1, 5))] for _ in range(n_choices)
        ]
        requests.append((context, choices))
    return requests


def _naive(model: torch.nn.Module, context: list[int], choice: list[int]) -> float:
    ids = torch.tensor([context + choice])
    with torch.no_grad():
        logprobs = model(ids)[0].double().log_softmax(-1)
    return sum(float(logprobs[len(context) - 1 + k, token]) for k, token in enumerate(choice))


def test_matches_naive_unbatched_computation(model: torch.nn.Module) -> None:
    requests = _requests(0)
    scores = score_choices(model, requests, batch_size=4)
    assert [len(s) for s in scores] == [len(choices) for _, choices in requests]
    for (context, choices), row in zip(requests, scores, strict=True):
        for choice, value in zip(choices, row, strict=True):
            assert value == pytest.approx(_naive(model, context, choice), abs=1e-5)


def test_does_not_depend_on_batch_size(model: torch.nn.Module) -> None:
    requests = _requests(1)
    reference = score_choices(model, requests, batch_size=1)
    for batch_size in (2, 5, 100):
        other = score_choices(model, requests, batch_size=batch_size)
        for row_a, row_b in zip(reference, other, strict=True):
            assert row_a == pytest.approx(row_b, abs=1e-5)


def test_single_token_choices_are_the_next_token_logprobs(model: torch.nn.Module) -> None:
    context = [1, 7, 9]
    scores = score_choices(model, [(context, [[t] for t in range(VOCAB)])])[0]
    with torch.no_grad():
        expected = model(torch.tensor([context]))[0, -1].double().log_softmax(-1)
    assert torch.tensor(scores) == pytest.approx(expected, abs=1e-5)
    assert torch.tensor(scores).exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_bad_requests_fail_clearly(model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="empty context"):
        score_choices(model, [([], [[5]])])
    with pytest.raises(ValueError, match="empty choice"):
        score_choices(model, [([1], [[5], []])])
    with pytest.raises(ValueError, match="batch_size=0"):
        score_choices(model, [([1], [[5]])], batch_size=0)


def test_choices_differing_only_in_their_last_token_share_one_sequence(model) -> None:
    """Single-token choices of one context, and multi-token choices with a common prefix, are
    scored from one forward row each, and still equal the naive per-choice computation."""
    rows_seen = []

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, ids):
            rows_seen.append(ids.shape[0])
            return self.inner(ids)

    counting = Counting()
    requests = [
        ([1, 5, 6], [[7], [8], [9], [10]]),  # 4 single-token choices: one stem
        ([1, 5], [[11, 12], [11, 13], [14]]),  # [11, *] share a stem; [14] has its own
    ]
    scores = score_choices(counting, requests, batch_size=100)
    assert rows_seen == [3]
    for (context, choices), row in zip(requests, scores, strict=True):
        for choice, value in zip(choices, row, strict=True):
            assert value == pytest.approx(_naive(model, context, choice), abs=1e-5)


def test_the_same_ids_split_differently_score_their_own_choice_tokens(model) -> None:
    """Both requests run the stem [1, 5, 6, 7]; each sums only its own choice's tokens."""
    requests = [([1, 5], [[6, 7, 8]]), ([1, 5, 6], [[7, 8]])]
    scores = score_choices(model, requests, batch_size=100)
    for (context, choices), row in zip(requests, scores, strict=True):
        assert row == pytest.approx([_naive(model, context, choices[0])], abs=1e-5)
