"""Validation loss on fixed windows of every data domain, every ``interval`` steps and at the last
step (NaN at the step a run diverged at and stopped).

What is read: ``eval_batches * batch_size`` windows in all, an equal share from each domain (each
of ``data.sources``, from its validation documents; a world or a ``data.path`` run is one
domain), each domain's first windows in corpus order (``held_out.held_out_windows``, the one way
per-domain measurements pick them). The val split holds the domains one after the other, so
reading its first windows, as validation did before, measured the first domain alone.

What is logged: ``val_loss/<domain>`` for each domain of a ``data.sources`` run (mean main loss
per target, as every loss here), and ``val_loss``, the weighted mean ``sum_d w_d * loss_d`` with
the weights of ``trainer.validation_weighting`` (normalized over the domains that have windows):

- ``mixture`` (default): each domain's share of the training mixture (``data.mixture.weights``,
  else its natural share of the training tokens), so ``val_loss`` estimates the loss on the
  distribution the model was trained on, as a validation loss is usually read;
- ``tokens``: each domain's held-out tokens (the corpus's own proportions);
- ``uniform``: every domain alike.

A run with one domain reads the first windows of its val split with weight 1: the same windows,
objective draws and number as before validation covered every domain.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.config import RunConfig
from transferlab.data import PreparedData
from transferlab.data.prepare import validation_domains
from transferlab.objectives import Batch, Objective
from transferlab.train.batching import BatchPlan, local_micro_batches
from transferlab.train.callbacks.held_out import held_out_windows
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Callback, Engine, StepOutput
from transferlab.train.rng import seeded_generator

log = logging.getLogger(__name__)

DOMAIN_PREFIX = "val_loss/"  # metrics.jsonl key of a domain's validation loss: val_loss/<domain>


@dataclass(frozen=True)
class ValidationSet:
    """This rank's share of each domain's validation windows, as the objective's micro batches
    (made once with a fixed seed, so every evaluation sees exactly the same inputs and targets),
    and the normalized weight of each domain in ``val_loss``."""

    micro_batches: dict[str, list[Batch]]
    windows: dict[str, int]  # all ranks' windows per domain
    weights: dict[str, float]
    weighting: str
    per_domain: bool  # log val_loss/<domain> (the domains are named sources)

    def evaluate(self, engine: Engine) -> dict[str, float]:
        """Each domain's mean loss per target (all ranks together)."""
        losses = {d: engine.evaluate_loss(b) for d, b in self.micro_batches.items()}
        return {d: loss for d, loss in losses.items() if loss is not None}

    def describe(self) -> dict[str, Any]:
        """What ``run_info.json`` records under ``validation``."""
        return {"weighting": self.weighting, "weights": self.weights, "windows": self.windows}


def weighted_loss(losses: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """``sum_d weights[d] * losses[d]``, correctly rounded (so it is independent of the order
    of the domains, and a single domain's weight 1 gives its loss exactly)."""
    return math.fsum(weights[d] * loss for d, loss in losses.items())


def validation_set(
    cfg: RunConfig, data: PreparedData, objective: Objective, plan: BatchPlan, dist: DistContext
) -> ValidationSet | None:
    """The validation windows of every domain and their weights; None without validation."""
    t = cfg.trainer
    if data.val_folder() is None or t.eval_batches == 0:
        return None
    domains = validation_domains(data)
    share = max(t.eval_batches * t.batch_size // max(len(domains), 1), 1)
    windows = held_out_windows(data, cfg.data.seq_len, share, "validation", dist.world_size)
    if not windows:
        log.warning("validation data holds no full window of seq_len tokens; no val loss")
        return None
    micro_batches = {
        d: local_micro_batches(
            objective.make_batch(rows, seeded_generator(cfg.seed, "eval")), plan, dist.rank
        )
        for d, rows in windows.items()
    }
    return ValidationSet(
        micro_batches,
        {d: len(rows) for d, rows in windows.items()},
        domain_weights(cfg, data, list(windows)),
        t.validation_weighting,
        per_domain=bool(cfg.data.sources),
    )


def domain_weights(cfg: RunConfig, data: PreparedData, domains: list[str]) -> dict[str, float]:
    """Each of ``domains``' weight in ``val_loss`` under ``trainer.validation_weighting``,
    normalized to sum to 1 over them."""
    weighting = cfg.trainer.validation_weighting
    if len(domains) == 1:
        raw = {domains[0]: 1.0}
    elif weighting == "uniform":
        raw = dict.fromkeys(domains, 1.0)
    elif weighting == "tokens":
        raw = _held_out_tokens(data, domains)
    else:
        raw = _mixture_shares(cfg, data, domains)
    total = sum(raw.values())
    if not total > 0:
        raise ValueError(
            f"trainer.validation_weighting: {weighting} gives the validated domains {domains} "
            "no weight; give one of them a mixture weight or use tokens or uniform"
        )
    return {d: raw[d] / total for d in domains}


def _mixture_shares(cfg: RunConfig, data: PreparedData, domains: list[str]) -> dict[str, float]:
    """The weights ``data.mixture.sample_mixture`` draws training tokens by: the configured ones
    (an unnamed domain gets 0), else each domain's natural training tokens (``info.json``)."""
    weights = cfg.data.mixture.weights if cfg.data.mixture else {}
    if weights:
        return {d: float(weights.get(d, 0.0)) for d in domains}
    info = json.loads((data.root / "info.json").read_text())
    natural = {row["name"]: float(row["tokens"]) for row in info["domains"]}
    return {d: natural[d] for d in domains}


def _held_out_tokens(data: PreparedData, domains: list[str]) -> dict[str, float]:
    folder, ranges = data.val_folder(), validation_domains(data)
    ends = np.concatenate([[0], folder.doc_ends])
    return {d: float(ends[ranges[d].stop] - ends[ranges[d].start]) for d in domains}


class ValidationCallback(Callback):
    """Adds ``val_loss`` (and ``val_loss/<domain>``) to the step's metrics row; ``last`` keeps
    the newest ``val_loss``."""

    name = "validation"

    def __init__(self, validation: ValidationSet | None, interval: int) -> None:
        self.validation = validation
        self.interval = interval
        self.last: float | None = None

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if self.validation is None:
            return
        if engine.step % self.interval == 0 or engine.step == engine.max_steps:
            losses = self.validation.evaluate(engine)
            if losses:
                self._record(engine, losses, weighted_loss(losses, self.validation.weights))

    def on_diverged_step(self, engine: Engine, out: StepOutput) -> None:
        """A diverged run's final validation loss is NaN: the weights it ends with never saw
        the diverged step, and scoring them would pass the run off as one that trained."""
        if self.validation is not None:
            self._record(engine, dict.fromkeys(self.validation.micro_batches, math.nan), math.nan)

    def _record(self, engine: Engine, losses: dict[str, float], overall: float) -> None:
        self.last = overall
        engine.row["val_loss"] = overall
        if self.validation.per_domain:
            engine.row |= {DOMAIN_PREFIX + d: loss for d, loss in losses.items()}
