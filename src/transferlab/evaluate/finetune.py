"""Fine-tuning on (prompt, answer) pairs with the loss on the answer only.

A training sequence is ``prompt + answer`` (the prompt opens with ``<bos>``, the answer closes
with ``<eos>``). Inputs are ``seq[:-1]`` and targets ``seq[1:]``, so position ``i`` predicts
token ``i + 1``; targets are kept on the answer tokens and the ``<eos>`` (positions
``len(prompt) - 1 .. len(seq) - 2``) and set to -100 on the prompt and the right padding.
The model is copied first: the caller's model is never touched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.evaluate.base import model_device
from transferlab.evaluate.lora import LORA_TARGETS, add_lora
from transferlab.objectives.answer_lm import Pair, answer_loss_batch
from transferlab.optim import AdamWConfig, CosineConfig

IGNORE = -100


@dataclass(frozen=True)
class FinetuneSettings:
    """How to fine-tune: ``steps`` optimizer steps of ``batch_size`` pairs, AdamW with a
    warmup + cosine schedule, full weights or LoRA adapters."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup_fraction: float = 0.0
    grad_clip: float | None = 1.0
    method: Literal["full", "lora"] = "full"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = LORA_TARGETS


@dataclass
class FinetuneResult:
    model: nn.Module  # the trained copy (a peft model, adapters unmerged, for LoRA)
    losses: list[float]  # training loss of each step


def finetune(
    model: nn.Module, pairs: Sequence[Pair], settings: FinetuneSettings, seed: int, pad_id: int = 0
) -> FinetuneResult:
    """Train a copy of ``model`` on ``pairs`` for ``settings.steps`` steps; seeded by ``seed``."""
    if not pairs:
        raise ValueError("finetune got no training pairs; the train split selects no examples")
    trainable = _trainable_copy(model, settings, seed)
    optimizer = AdamWConfig(lr=settings.lr, weight_decay=settings.weight_decay).build(trainable)
    warmup = min(round(settings.warmup_fraction * settings.steps), settings.steps - 1)
    schedule = CosineConfig(warmup_steps=warmup).build(settings.steps)
    generator = torch.Generator().manual_seed(seed)
    batches = _index_batches(len(pairs), settings.batch_size, generator)
    params = [p for p in trainable.parameters() if p.requires_grad]
    losses = []
    trainable.train()
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * schedule(step)
        batch = answer_loss_batch([pairs[i] for i in next(batches)], pad_id)
        losses.append(_step(trainable, optimizer, params, batch, settings.grad_clip))
    trainable.eval()
    return FinetuneResult(trainable, losses)


def _step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    batch: tuple[torch.Tensor, torch.Tensor],
    grad_clip: float | None,
) -> float:
    """One optimizer step on the answer-only loss; returns the loss."""
    device = model_device(model)
    inputs, targets = (t.to(device) for t in batch)
    logits = model(inputs)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.item()


def steps_for_epochs(epochs: float, n_pairs: int, batch_size: int) -> int:
    """Optimizer steps that show each pair ``epochs`` times (at least one step)."""
    return max(1, math.ceil(epochs * n_pairs / batch_size))


def _trainable_copy(model: nn.Module, settings: FinetuneSettings, seed: int) -> nn.Module:
    trainable = copy.deepcopy(model)
    if settings.method == "full":
        return trainable
    # LoRA's init draws from the global generator: seed it, then restore the caller's state.
    device = model_device(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return add_lora(trainable, settings.lora_r, settings.lora_alpha, settings.lora_targets)


def _index_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless batches from successive seeded permutations (a batch may span two epochs)."""
    pending: list[int] = []
    while True:
        while len(pending) < batch_size:
            pending.extend(torch.randperm(n, generator=generator).tolist())
        yield pending[:batch_size]
        pending = pending[batch_size:]
