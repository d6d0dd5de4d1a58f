"""The interface every objective implements: it owns the training step's batch and loss.

An objective turns what a batch source yields (packed token windows [B, L+1] in pretraining,
task examples in fine-tuning) into a ``Batch``: a dict of tensors whose first dimension is the
row. The engine slices a Batch into micro batches and DDP shards by rows without reading its
fields, then asks the objective for each micro batch's loss as a ``LossOutput`` of sums over
targets, so accumulation and data parallelism average over the targets of the whole global batch.

An objective also declares how its model is read downstream (``attention``): a model trained
bidirectionally is scored by pseudo-log-likelihood and probed on bidirectional features, never
read as if it were causal. The declaration lives on the objective's config (a class variable), so
a task can ask a stored run's config without building anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from transferlab.config.schemas import ObjectiveConfig

IGNORE_INDEX = -100  # targets equal to this carry no loss (torch cross_entropy's ignore_index)

Attention = Literal["causal", "bidirectional", "prefix"]
Batch = dict[str, torch.Tensor]  # every tensor's first dimension is the row


@dataclass
class LossOutput:
    """A micro batch's loss, as sums over its targets (the engine divides by the global count).

    ``total`` (the main loss plus every auxiliary loss) is what is minimized. ``aux`` holds
    weighted auxiliary losses (z-loss, a model part's load balancing) and ``metrics`` other named
    sums to log (detached); each is logged per target under its name.
    """

    sum: torch.Tensor  # scalar, the main loss summed over targets (carries the graph)
    n_targets: int
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def total(self) -> torch.Tensor:
        return self.sum + sum(self.aux.values()) if self.aux else self.sum


class Objective(ABC):
    """Makes batches and computes their loss; holds no random state.

    Randomness (masking, corruption) comes only from the ``generator`` passed to ``make_batch``,
    which the engine seeds afresh from (run seed, step) and applies to the whole global batch, so
    a resumed run, another micro batch size or another number of processes draws the same masks.
    """

    attention: Attention = "causal"

    @abstractmethod
    def make_batch(self, source: Any, generator: torch.Generator) -> Batch:
        """The Batch of one global step from what the batch source yielded."""

    @abstractmethod
    def n_targets(self, batch: Batch) -> int:
        """How many targets ``batch`` holds (the loss is averaged over them)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        """The loss of ``batch`` (a micro batch), calling ``model`` itself (so DDP sees it)."""


def token_prediction_loss(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    attention: Attention,
    prefix_len: torch.Tensor | None = None,
    z_loss: float = 0.0,
) -> LossOutput:
    """Summed cross entropy of predicting ``targets`` [B, L] (IGNORE_INDEX where none) from the
    model's final hidden states under ``attention``; the model's auxiliary losses (each a mean
    over the forward) are weighted by the number of targets so they average like the main loss.
    With ``z_loss`` > 0, ``aux["z_loss"]`` is ``z_loss`` times the summed log^2 Z of the output
    logits at the target positions (Z: the softmax normalizer), which keeps log Z near 0.

    The logits are never materialized whole (``models.loss.linear_cross_entropy``), which makes
    training faster and lighter; the loss is in fp32 even under autocast.
    """
    from transferlab.models.loss import linear_cross_entropy, linear_cross_entropy_with_z

    out = model(inputs, attention=attention, prefix_len=prefix_len, output="features")
    flat_targets = targets.flatten()
    hidden = out.hidden.flatten(0, 1)
    n = int((flat_targets != IGNORE_INDEX).sum())
    aux = {name: value.float() * n for name, value in out.aux_losses.items()}
    if not z_loss:  # exactly the loss of before z-loss existed
        loss = linear_cross_entropy(hidden, out.head, flat_targets, "sum").float()
        return LossOutput(loss, n, aux)
    if "z_loss" in aux:
        raise ValueError(
            "a model part reports an auxiliary loss named 'z_loss', the objective's own; "
            "rename the part's (e.g. router_z_loss)"
        )
    loss, log_z_sq = linear_cross_entropy_with_z(hidden, out.head, flat_targets, "sum")
    aux["z_loss"] = z_loss * log_z_sq.float()
    return LossOutput(loss.float(), n, aux)


class TokenPredictionConfig(ObjectiveConfig):
    """The config of a token-prediction objective: ``z_loss`` (default 0: off) weighs the
    z-loss log^2 Z of the output logits into the minimized loss (PaLM and Wortsman et al. 2023
    use 1e-4); it is logged per target as ``z_loss``."""

    z_loss: float = Field(default=0.0, ge=0)  # weight of log^2 Z of the logits; 0: off


class TokenPredictionObjective(Objective):
    """An objective whose Batch is ``inputs`` and ``targets`` [B, L] (and ``prefix_len`` [B] for
    prefix attention) and whose loss is the cross entropy of the targets (plus, with
    ``z_loss`` > 0, the z-loss): clm, mlm, fine-tuning on answers. Subclasses only make the
    batch."""

    def __init__(self, z_loss: float = 0.0) -> None:
        self.z_loss = z_loss

    def n_targets(self, batch: Batch) -> int:
        return int((batch["targets"] != IGNORE_INDEX).sum())

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        return token_prediction_loss(
            model,
            batch["inputs"],
            batch["targets"],
            self.attention,
            batch.get("prefix_len"),
            self.z_loss,
        )
