"""Generation for many prompts at once: greedy or sampled (``sampling``), with a key/value cache.

With the cache (the default for a ``Transformer``) a batch holds prompts of similar length,
left-padded: one forward over the prompts fills the cache, then each forward takes one new
token per row (``models.kv_cache`` gives the padded rows their own positions). Without it (any
model whose ``model(input_ids)`` returns causal logits) a batch holds prompts of one length, so
it needs no padding, and every step recomputes the whole sequence. A row that emits ``<eos>``
leaves the batch. benchmarks/README.md has the speeds of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from transferlab.evaluate.inference import length_batches, model_device
from transferlab.evaluate.sampling import Sampling, prompt_generators
from transferlab.models.kv_cache import KVCache
from transferlab.models.transformer import Transformer


def generate(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    *,
    eos_id: int | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    batch_size: int = 64,
    use_cache: bool | None = None,
    attention: Literal["causal", "prefix"] = "causal",
) -> list[list[int]]:
    """The continuation of each prompt, up to ``<eos>`` (left out) or ``max_new_tokens``.

    ``temperature=0`` is greedy; otherwise tokens are sampled (``Sampling``: ``top_k``,
    ``top_p``) from per-prompt generators seeded by ``seed``, so a prompt's continuation depends
    only on the model, the prompt, the settings and the seed. ``use_cache`` defaults to whether
    ``model`` is a ``Transformer``. ``attention="prefix"`` reads a prefix LM as it was trained:
    the prompt is the prefix (seen whole), the continuation causal after it (with the cache).
    """
    sampling = Sampling(temperature, top_k, top_p)
    if attention not in ("causal", "prefix"):
        raise ValueError(
            f"attention={attention!r} cannot generate; a causal or prefix model can, a "
            "bidirectional one has no next token"
        )
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} and batch_size={batch_size} must be at least 1"
        )
    for index, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {index} is empty; start it with <bos>")
    cached = isinstance(model, Transformer) if use_cache is None else use_cache
    if cached and not isinstance(model, Transformer):
        raise ValueError(
            f"use_cache=True needs a transferlab Transformer, not {type(model).__name__}; "
            "leave use_cache unset"
        )
    if attention == "prefix" and not cached:
        raise ValueError(
            "prefix generation reads the prompt through the key/value cache; "
            "generate with a transferlab Transformer and use_cache unset"
        )
    generators = None if sampling.greedy else prompt_generators(prompts, seed)
    decode = _decode_cached if cached else _decode_recomputed
    outputs: list[list[int]] = [[] for _ in prompts]
    device = model_device(model)
    lengths = [len(p) for p in prompts]
    # Shortest first, the order greedy_generate always had (results do not depend on it).
    batches = reversed(length_batches(lengths, batch_size, same_length=not cached))
    with torch.inference_mode():
        for rows in batches:
            batch = _left_padded([prompts[i] for i in rows], device)
            row_generators = None if generators is None else [generators[i] for i in rows]
            steps = _Steps(sampling, row_generators, eos_id, len(rows))
            decode(model, *batch, steps, max_new_tokens, attention)
            for row, tokens in zip(rows, steps.generated, strict=True):
                outputs[row] = tokens
    return outputs


def greedy_generate(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    eos_id: int,
    max_new_tokens: int,
    batch_size: int = 64,
) -> list[list[int]]:
    """The greedy continuation of each prompt (``generate`` at temperature 0)."""
    return generate(model, prompts, max_new_tokens, eos_id=eos_id, batch_size=batch_size)


class _Steps:
    """The rows of one batch still generating, and what each generated so far."""

    def __init__(
        self,
        sampling: Sampling,
        generators: list[torch.Generator] | None,
        eos_id: int | None,
        n_rows: int,
    ) -> None:
        self.sampling = sampling
        self.generators = generators
        self.eos_id = eos_id
        self.generated: list[list[int]] = [[] for _ in range(n_rows)]
        self.active = list(range(n_rows))  # batch rows still generating, in the model's order

    def advance(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick each active row's next token from its last ``logits`` [B, V]; return the picked
        tokens [B] and the positions [K] of the rows that go on (empty: all finished)."""
        generators = None
        if self.generators is not None:
            generators = [self.generators[row] for row in self.active]
        tokens = self.sampling.pick(logits, generators)
        keep = []
        for position, token in enumerate(tokens.tolist()):
            if token != self.eos_id:
                self.generated[self.active[position]].append(token)
                keep.append(position)
        self.active = [self.active[p] for p in keep]
        return tokens, torch.tensor(keep, dtype=torch.long, device=tokens.device)


def _left_padded(
    prompts: Sequence[Sequence[int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, L] with each prompt at the right end, and validity [B, L] (False: pad)."""
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)  # pads are masked: any id will do
    valid = torch.zeros(len(prompts), width, dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(list(prompt))
        valid[row, width - len(prompt) :] = True
    return ids.to(device), valid.to(device)


def _decode_cached(
    model: nn.Module,
    ids: torch.Tensor,
    valid: torch.Tensor,
    steps: _Steps,
    max_new_tokens: int,
    attention: str,
) -> None:
    """The prompts' forward reads them with ``attention`` (a prefix LM's prefix: whole); each
    new token is causal."""
    cache = KVCache()
    inputs = ids
    for _ in range(max_new_tokens):
        logits = model(inputs, attention=attention, cache=cache, valid=valid)[:, -1]
        tokens, keep = steps.advance(logits)
        if not len(keep):
            return
        cache.keep(keep)
        inputs, valid, attention = tokens[keep, None], None, "causal"


def _decode_recomputed(
    model: nn.Module,
    ids: torch.Tensor,
    valid: torch.Tensor,
    steps: _Steps,
    max_new_tokens: int,
    attention: str,
) -> None:
    """``ids`` hold prompts of one length (``valid`` is all True); ``attention`` is causal."""
    for _ in range(max_new_tokens):
        tokens, keep = steps.advance(model(ids)[:, -1])
        if not len(keep):
            return
        ids = torch.cat((ids, tokens[:, None]), dim=1)[keep]
