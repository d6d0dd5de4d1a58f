"""How a task reads a model: as the objective that trained it attends (its config's
``objective.attention``), never as if every model were causal.

=============  ===========================================  ===================================
attention      scoring of choices                           features (probes, classifier heads)
=============  ===========================================  ===================================
causal         log-likelihood (``score.score_choices``)     hidden states, causal attention
bidirectional  pseudo-log-likelihood (``pll``)              hidden states, bidirectional
prefix         log-likelihood, the context as the prefix    the whole sequence as the prefix
discriminator  not defined (no token distribution)          hidden states, bidirectional
=============  ===========================================  ===================================

The readings are the attention kinds, plus "discriminator": a model trained by replaced-token
detection (electra), which attends bidirectionally and predicts no tokens.

A task declares the readings it can read (``TaskConfig.readings``); ``reading_error``
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
from transferlab.objectives.electra import DISCRIMINATOR_READING

READINGS: tuple[str, ...] = get_args(Attention)  # the attention kinds: models that predict tokens
# Every reading: what a task that reads only features (a probe) declares
ALL_READINGS: tuple[str, ...] = (*READINGS, DISCRIMINATOR_READING)


@dataclass(frozen=True)
class Reader:
    """Scores choices and extracts features of a model trained with ``attention``; with
    ``discriminator``, a replaced-token discriminator (bidirectional, no token distribution)."""

    attention: Attention = "causal"
    discriminator: bool = False

    def __post_init__(self) -> None:
        if self.attention not in READINGS:
            raise ValueError(
                f"reading {self.attention!r} is unknown; expected one of {ALL_READINGS}"
            )
        if self.discriminator and self.attention != "bidirectional":
            raise ValueError("a discriminator is read bidirectionally; drop attention=")

    @property
    def reading(self) -> str:
        """The reading tasks declare (``TaskConfig.readings``)."""
        return DISCRIMINATOR_READING if self.discriminator else self.attention

    def _no_token_distribution(self, what: str) -> ValueError:
        return ValueError(
            f"a replaced-token discriminator gives no {what} (it predicts no tokens); read its "
            "features, or read a model of a token-predicting objective"
        )

    def score_choices(
        self,
        model: nn.Module,
        requests: Sequence[Request],
        special: SpecialTokenIds,
        batch_size: int = 32,
    ) -> list[list[float]]:
        """One score per choice of each request: a log-likelihood, or for a bidirectional model
        a pseudo-log-likelihood (which ranks choices but is no likelihood)."""
        if self.discriminator:
            raise self._no_token_distribution("choice scores")
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
        if self.discriminator:
            raise self._no_token_distribution("log-likelihood")
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


def as_reader(reading: str | Reader) -> Reader:
    """``reading`` as a ``Reader``: a reading (an objective config's ``reading``: an attention
    kind or "discriminator"), or a reader passed through."""
    if isinstance(reading, Reader):
        return reading
    if reading == DISCRIMINATOR_READING:
        return Reader("bidirectional", discriminator=True)
    return Reader(reading)


def reading_error(
    task: TaskConfig, reading: str, subject: str = "this model: it is read with"
) -> str | None:
    """None when ``task`` can read a model of ``reading`` (an objective config's ``reading``);
    else a one-line error.

    ``subject`` names the model, completed by the reading, e.g. "run variant 'mlm': its
    objective 'mlm' trains". The error suggests the tasks on the same data (those that do or do
    not use a world) that can read the model, and the readings this task reads.
    """
    if reading in task.readings:
        return None
    alternatives = [
        name
        for name in TASKS.names()
        if name != task.name
        and reading in TASKS.get(name).readings
        and TASKS.get(name).uses_world == task.uses_world
    ]
    use = f"use {' or '.join(alternatives)}, or" if alternatives else "use"
    return (
        f"task {task.task_name!r} cannot read {subject} {_described(reading)} and {task.name} "
        f"{task.reading_limit}; {use} an objective with {' or '.join(task.readings)} attention"
    )


def _described(reading: str) -> str:
    if reading == DISCRIMINATOR_READING:
        return "a replaced-token discriminator (features only, no token distribution)"
    return f"{reading} attention"
