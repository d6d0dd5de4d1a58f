"""Weight norm (``trainer.callbacks: [{name: weight_norm, every: 100}]``): the total L2 norm of
the trained parameters, ``sqrt(sum_i ||theta_i||^2)``, logged as ``weight_norm`` every
``every`` steps and at the last step, and beside it ``matrix_norm``, the same over the matrices
and embeddings only (parameters of two or more dimensions). The second is the one to read: the
norm gains (ones at init, never decayed) dominate the total of a small model (13.9 of 15.9 in
the grokking recipe's model at init) and hide what weight decay does to the matrices.

A monitor of memorization against generalization that needs no held-out data: in grokking
(Power et al. 2022; Nanda et al. 2023; Liu et al. 2023, "Omnigrok") weight decay shrinks the
norm of a memorizing solution until a generalizing, lower-norm one takes over, so the norm
falls around the step test accuracy rises. It reads the weights only, after the optimizer step.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from transferlab.config.registry import CALLBACKS
from transferlab.config.schemas import CallbackConfig
from transferlab.train.engine import Callback, Engine, StepOutput


@CALLBACKS.register("weight_norm")
class WeightNormConfig(CallbackConfig):
    """The total L2 norm of the trained parameters, logged every ``every`` steps."""

    name: Literal["weight_norm"] = "weight_norm"
    every: int = Field(default=100, gt=0)  # steps between measurements (and the last step)

    def build(self) -> WeightNormCallback:
        return WeightNormCallback(self)


def weight_norm(model: nn.Module, matrices_only: bool = False) -> float:
    """``sqrt(sum ||p||^2)`` over the parameters that train (``requires_grad``), in fp64;
    ``matrices_only``: over those of two or more dimensions (no norm gains, no biases)."""
    with torch.no_grad():
        squares = [
            p.detach().double().pow(2).sum()
            for p in model.parameters()
            if p.requires_grad and (p.ndim >= 2 or not matrices_only)
        ]
    return math.sqrt(float(torch.stack(squares).sum())) if squares else 0.0


def is_logged_step(step: int, every: int, max_steps: int) -> bool:
    """Whether a monitor that logs every ``every`` steps logs at ``step`` (and at the last)."""
    return step % every == 0 or step == max_steps


class WeightNormCallback(Callback):
    name = "weight_norm"

    def __init__(self, cfg: WeightNormConfig) -> None:
        self.cfg = cfg

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if is_logged_step(engine.step, self.cfg.every, engine.max_steps):
            engine.row["weight_norm"] = weight_norm(engine.model)
            engine.row["matrix_norm"] = weight_norm(engine.model, matrices_only=True)
