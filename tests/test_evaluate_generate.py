"""Greedy generation: stops at <eos> or the token budget, batched without changing results."""

from __future__ import annotations

import torch
from torch import nn

from transferlab.config import ModelConfig
from transferlab.evaluate.generate import greedy_generate
from transferlab.models import build_model

EOS = 2
VOCAB = 16


class ScriptedLM(nn.Module):
    """Predicts, for the row whose prompt starts with token ``t``, ``scripts[t][k]`` as the k-th
    generated token (then 9 forever); records the batch shape of every call."""

    def __init__(self, scripts: dict[int, tuple[int, list[int]]]) -> None:
        super().__init__()
        self.scripts = scripts  # first token -> (prompt length, tokens to emit)
        self.shapes: list[tuple[int, int]] = []

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        self.shapes.append((batch, length))
        logits = torch.zeros(batch, length, VOCAB)
        for b in range(batch):
            prompt_len, tokens = self.scripts[int(input_ids[b, 0])]
            step = length - prompt_len
            logits[b, -1, tokens[step] if step < len(tokens) else 9] = 5.0
        return logits


def test_stops_at_eos_and_leaves_it_out() -> None:
    model = ScriptedLM({1: (3, [5, 6, 7, EOS, 8])})
    assert greedy_generate(model, [[1, 4, 4]], EOS, max_new_tokens=10) == [[5, 6, 7]]
    assert len(model.shapes) == 4  # three tokens, then the step that produced <eos>


def test_stops_at_max_new_tokens_without_eos() -> None:
    model = ScriptedLM({1: (2, [5, 6, 7])})
    assert greedy_generate(model, [[1, 4]], EOS, max_new_tokens=5) == [[5, 6, 7, 9, 9]]
    assert greedy_generate(model, [[1, 4]], EOS, max_new_tokens=2) == [[5, 6]]


def test_immediate_eos_gives_an_empty_continuation() -> None:
    model = ScriptedLM({1: (2, [EOS])})
    assert greedy_generate(model, [[1, 4]], EOS, max_new_tokens=4) == [[]]


def test_groups_equal_lengths_and_drops_finished_rows() -> None:
    scripts = {1: (3, [5, EOS]), 3: (3, [6, 7, 8, EOS]), 4: (2, [EOS])}
    model = ScriptedLM(scripts)
    out = greedy_generate(model, [[1, 0, 0], [4, 0], [3, 0, 0]], EOS, max_new_tokens=8)
    assert out == [[5], [], [6, 7, 8]]
    # Length-2 group alone, then the two length-3 prompts together; the first leaves after <eos>.
    assert model.shapes == [(1, 2), (2, 3), (2, 4), (1, 5), (1, 6)]


def test_batched_equals_one_at_a_time_on_a_real_model() -> None:
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=2, init_std=0.5)
    )
    prompts = [[1, 5], [1, 6], [1, 7, 8], [1, 9, 10], [1, 11]]
    batched = greedy_generate(model, prompts, EOS, max_new_tokens=6, batch_size=2)
    singles = [greedy_generate(model, [p], EOS, max_new_tokens=6)[0] for p in prompts]
    assert batched == singles
    assert all(len(tokens) <= 6 and EOS not in tokens for tokens in batched)
