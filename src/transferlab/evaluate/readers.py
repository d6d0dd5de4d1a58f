"""How a task reads a model: as the objective that trained it attends (its config's
``objective.attention``), never as if every model were causal.

=============  ===========================================  ===================================
attention      scoring of choices                           features (probes, classifier heads)
=============  ===========================================  ===================================
causal         log-likelihood (``score.score_choices``)     hidden states, causal attention
bidirectional  pseudo-log-likelihood (``pll``)              hidden states, bidirectional
prefix         log-likelihood, the context as the prefix    the whole sequence as the prefix
=============  ===========================================  ===================================

A task declares the attention kinds it can read (``TaskConfig.readings``); ``reading_error``
words the refusal for the others, which the planner raises before anything is trained and
``Task.run`` raises again before any work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import torch
from torch import nn

from transferlab.config.registry import TASKS
from transferlab.config.schemas import TaskConfig
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.evaluate.features import Pooling, pooled_hidden
from transferlab.evaluate.pll import pseudo_log_likelihood
from transferlab.evaluate.score import Request, Scored, score_choices, score_continuations
from transferlab.models.transformer import ModelOutput
from transferlab.objectives.base import Attention

READINGS: tuple[str, ...] = get_args(Attention)


@dataclass(frozen=True)
class Reader:
    """Scores choices and extracts features of a model trained with ``attention``."""

    attention: Attention = "causal"

    def __post_init__(self) -> None:
        if self.attention not in READINGS:
            raise ValueError(f"reading {self.attention!r} is unknown; expected one of {READINGS}")

    def score_choices(
        self,
        model: nn.Module,
        requests: Sequence[Request],
        special: SpecialTokenIds,
        batch_size: int = 32,
    ) -> list[list[float]]:
        """One score per choice of each request: a log-likelihood, or for a bidirectional model
        a pseudo-log-likelihood (which ranks choices but is no likelihood)."""
        if self.attention == "bidirectional":
            return pseudo_log_likelihood(model, requests, special.mask, batch_size)
        return score_choices(model, requests, batch_size, special.pad, self.attention)

    def loglikelihoods(
        self,
        model: nn.Module,
        requests: Sequence[Request],
        special: SpecialTokenIds,
        batch_size: int = 32,
    ) -> list[list[Scored]]:
        """Per choice of each request its log-likelihood and whether it is the greedy
        continuation; a bidirectional model gives neither, so it is refused."""
        if self.attention == "bidirectional":
            raise ValueError(
                "a bidirectional model gives no log-likelihood (only a pseudo-log-likelihood); "
                "score choices with score_choices, or read a causal or prefix model"
            )
        return score_continuations(model, requests, batch_size, special.pad, self.attention)

    def features(
        self,
        model: nn.Module,
        sequences: Sequence[Sequence[int]],
        layers: Sequence[int],
        pooling: Pooling = "last",
        batch_size: int = 64,
    ) -> torch.Tensor:
        """``features.pooled_hidden`` under this reader's attention: [len(layers), N, d]."""
        return pooled_hidden(model, sequences, layers, pooling, batch_size, self.attention)

    def feature_forward(
        self, model: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor
    ) -> ModelOutput:
        """The model's forward to its final hidden states (``ModelOutput.hidden`` [B, L, d],
        after the final norm: what an output head reads, and the parts' auxiliary losses) on
        right-padded ``inputs`` [B, L] whose rows hold ``lengths`` real tokens, with gradients,
        for a head trained on them (``classifier_head``). Each row is read as if alone:
        causally (padding comes after every real token), or, for a prefix or bidirectional
        model, with its real tokens as the prefix, so they attend to each other and never to
        the padding."""
        if self.attention == "causal":
            return model(inputs, output="features")
        return model(inputs, attention="prefix", prefix_len=lengths, output="features")


class ConfigReadings:
    """``TaskConfig.readings`` of a task whose readings follow from its config's fields: on the
    class ``default`` (what its default config reads: the catalog shows it, other tasks' errors
    suggest it), on a config ``declare(config)``, which ``reading_error`` checks."""

    def __init__(self, default: tuple[str, ...], declare: Callable[[Any], tuple[str, ...]]) -> None:
        self.default = default
        self.declare = declare

    def __get__(self, config: Any, owner: type | None = None) -> tuple[str, ...]:
        return self.default if config is None else self.declare(config)


def as_reader(reading: Attention | Reader) -> Reader:
    """``reading`` as a ``Reader``: an attention kind, or a reader passed through."""
    return reading if isinstance(reading, Reader) else Reader(reading)


def reading_error(
    task: TaskConfig, attention: str, subject: str = "this model: it is read with"
) -> str | None:
    """None when ``task`` can read a model trained with ``attention``; else a one-line error.

    ``subject`` names the model, completed by the attention kind, e.g. "run variant 'mlm': its
    objective 'mlm' trains". The error suggests the tasks on the same data (those that do or do
    not use a world) that can read the model, and the attention kinds this task reads.
    """
    if attention in task.readings:
        return None
    alternatives = [
        name
        for name in TASKS.names()
        if name != task.name
        and attention in TASKS.get(name).readings
        and TASKS.get(name).uses_world == task.uses_world
    ]
    use = f"use {' or '.join(alternatives)}, or" if alternatives else "use"
    return (
        f"task {task.task_name!r} cannot read {subject} {attention} attention and {task.name} "
        f"{task.reading_limit}; {use} an objective with {' or '.join(task.readings)} attention"
    )
