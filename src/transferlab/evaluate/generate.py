"""Greedy generation for many prompts at once, without a KV cache.

Tiny models recompute the whole sequence each step in less time than a cache would save, so the
only batching trick is to group prompts of equal token length: a group needs no padding, and all
its rows advance one token per forward pass. A row that emits ``<eos>`` leaves the batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import nn

from transferlab.evaluate.inference import model_device


def greedy_generate(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    eos_id: int,
    max_new_tokens: int,
    batch_size: int = 64,
) -> list[list[int]]:
    """The greedy continuation of each prompt, up to ``<eos>`` (left out) or ``max_new_tokens``.

    ``model(input_ids)`` must return causal logits [B, L, V].
    """
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} and batch_size={batch_size} must be at least 1"
        )
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {index} is empty; start it with <bos>")
        by_length[len(prompt)].append(index)
    outputs: list[list[int]] = [[] for _ in prompts]
    device = model_device(model)
    with torch.inference_mode():
        for length in sorted(by_length):
            group = by_length[length]
            for start in range(0, len(group), batch_size):
                rows = group[start : start + batch_size]
                batch = torch.tensor([list(prompts[i]) for i in rows], device=device)
                for row, tokens in zip(
                    rows, _greedy(model, batch, eos_id, max_new_tokens), strict=True
                ):
                    outputs[row] = tokens
    return outputs


def _greedy(
    model: nn.Module, batch: torch.Tensor, eos_id: int, max_new_tokens: int
) -> list[list[int]]:
    """Greedy continuations of the equal-length prompts in ``batch`` [B, L]."""
    generated: list[list[int]] = [[] for _ in range(batch.shape[0])]
    active = list(range(batch.shape[0]))  # rows still generating, in order of ``batch``
    for _ in range(max_new_tokens):
        next_tokens = model(batch)[:, -1].argmax(-1)
        keep = []
        for position, token in enumerate(next_tokens.tolist()):
            if token == eos_id:
                continue
            generated[active[position]].append(token)
            keep.append(position)
        if not keep:
            break
        active = [active[p] for p in keep]
        batch = torch.cat((batch, next_tokens[:, None]), dim=1)[keep]
    return generated
