"""Picking the next token from logits: greedy, or sampled with temperature, top-k and top-p.

Sampling draws from one ``torch.Generator`` per prompt (on the CPU, whatever the model's
device), seeded from the run's seed, the prompt's tokens and how many equal prompts came before
it (``prompt_generators``). A prompt's samples therefore do not depend on the other prompts of
the call, their order or the batch size, and repeating a prompt gives different samples.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """``temperature=0`` is greedy (argmax); otherwise draw from softmax(logits / temperature)
    restricted to the ``top_k`` most probable tokens and then to the smallest set of most
    probable tokens whose probability reaches ``top_p`` (nucleus sampling)."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(
                f"temperature={self.temperature} must be finite and >= 0 (0 is greedy)"
            )
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k={self.top_k} must be at least 1, or None for no limit")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1], or None for no limit")
        if self.greedy and (self.top_k is not None or self.top_p is not None):
            raise ValueError(
                "top_k and top_p do nothing with temperature=0 (greedy); "
                "set temperature > 0 or leave them out"
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """The distribution [B, V] (float32) that ``pick`` draws from, for ``logits`` [B, V]."""
        scaled = logits.float() / self.temperature
        if self.top_k is not None and self.top_k < scaled.shape[-1]:
            kth = scaled.topk(self.top_k, dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < kth, -math.inf)
        probs = scaled.softmax(-1)
        if self.top_p is not None:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Keep a token while the tokens more probable than it sum to less than top_p: the
            # most probable is always kept, and the set stops at the first that reaches top_p.
            before = sorted_probs.cumsum(-1) - sorted_probs
            drop = torch.zeros_like(probs, dtype=torch.bool).scatter(
                -1, order, before >= self.top_p
            )
            probs = probs.masked_fill(drop, 0.0)
            probs = probs / probs.sum(-1, keepdim=True)
        return probs

    def pick(
        self, logits: torch.Tensor, generators: Sequence[torch.Generator] | None
    ) -> torch.Tensor:
        """The next token [B] for the last-position ``logits`` [B, V], row ``b`` drawing from
        ``generators[b]`` (unused when greedy)."""
        if self.greedy:
            return logits.argmax(-1)
        if generators is None or len(generators) != logits.shape[0]:
            raise ValueError("sampling needs one generator per row of logits")
        probs = self.probabilities(logits).cpu()
        drawn = [
            torch.multinomial(row, 1, generator=g) for row, g in zip(probs, generators, strict=True)
        ]
        return torch.cat(drawn).to(logits.device)


def prompt_generators(prompts: Sequence[Sequence[int]], seed: int) -> list[torch.Generator]:
    """One CPU generator per prompt, seeded by (seed, the prompt's tokens, how many equal
    prompts precede it), so that nothing else about the call changes its draws."""
    seen: Counter[tuple[int, ...]] = Counter()
    generators = []
    for prompt in prompts:
        tokens = tuple(int(t) for t in prompt)
        text = json.dumps([seed, seen[tokens], tokens])
        seen[tokens] += 1
        digest = hashlib.sha256(text.encode()).digest()
        generator = torch.Generator()
        generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)  # 63 bits: non-negative
        generators.append(generator)
    return generators
