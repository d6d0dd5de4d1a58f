"""Stability signals (``trainer.callbacks: [{name: stability, every: 10}]``).

Every ``every`` steps, measured on that step's own first micro batch (no extra data, no extra
forward pass): the largest attention logit of each layer (q.k / sqrt(d) over the positions the
mask allows; logit growth precedes attention-entropy collapse), the mean log-partition
log Z = logsumexp(logits) of the output head and its drift from the first measurement (what
z-loss keeps near 0), and the update-to-weight RMS ratio of the weight matrices (mean and max;
about lr-sized when the optimizer is healthy). Every step: the gradient norm against its
exponential moving average; a step whose norm exceeds ``spike_factor`` times the average is
logged as a spike (``grad_spike``, the ratio) and counted (``grad_spikes``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from transferlab.config.registry import CALLBACKS
from transferlab.config.schemas import CallbackConfig
from transferlab.models.transformer import ModelOutput
from transferlab.train.engine import Callback, Engine, StepOutput


@CALLBACKS.register("stability")
class StabilityConfig(CallbackConfig):
    name: Literal["stability"] = "stability"
    every: int = Field(default=10, gt=0)  # steps between the logit, log Z and update signals
    # a step whose gradient norm exceeds this times its moving average is a spike
    spike_factor: float = Field(default=3.0, gt=1)
    ema_decay: float = Field(default=0.9, gt=0, lt=1)  # decay of the gradient norm's average
    log_z_positions: int = Field(default=4096, gt=0)  # positions log Z is averaged over

    def build(self) -> StabilityCallback:
        return StabilityCallback(self)


def mean_log_partition(out: ModelOutput, positions: int) -> float:
    """Mean logsumexp of the output logits over the first ``positions`` positions."""
    hidden = out.hidden.flatten(0, 1)[:positions]
    return float(torch.logsumexp((hidden @ out.head.T).float(), dim=-1).mean())


class StabilityCallback(Callback):
    name = "stability"

    def __init__(self, cfg: StabilityConfig) -> None:
        self.cfg = cfg
        self.grad_ema: float | None = None
        self.spikes = 0
        self.first_log_z: float | None = None
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._before: dict[str, torch.Tensor] = {}
        self._logits: dict[int, float] = {}
        self._log_z: float | None = None

    # ------------------------------------------------------------------------------ hooks
    def on_step_start(self, engine: Engine) -> None:
        if (engine.step + 1) % self.cfg.every:
            return
        self._logits, self._log_z = {}, None
        # Attention parts that can show their logits (``attention_logits(x, ctx)``), in order.
        attention = [m for m in engine.model.modules() if hasattr(m, "attention_logits")]
        for layer, module in enumerate(attention):
            self._hooks.append(module.register_forward_hook(self._attention_hook(layer)))
        self._hooks.append(engine.model.register_forward_hook(self._output_hook))
        self._before = {name: p.detach().clone() for name, p in _matrices(engine.model)}

    def _attention_hook(self, layer: int):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if layer not in self._logits:  # the first micro batch only
                with torch.no_grad():
                    self._logits[layer] = float(module.attention_logits(*args).max())

        return hook

    def _output_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._log_z is None and isinstance(output, ModelOutput):
            with torch.no_grad():
                self._log_z = mean_log_partition(output, self.cfg.log_z_positions)

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        self._track_grad_norm(engine, out.grad_norm)
        if not self._hooks:
            return
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        row = engine.row
        if self._logits:
            for layer, value in sorted(self._logits.items()):
                row[f"attn_logit_max_l{layer}"] = value
            row["attn_logit_max"] = max(self._logits.values())
        if self._log_z is not None:
            if self.first_log_z is None:
                self.first_log_z = self._log_z
            row["log_z_mean"] = self._log_z
            row["log_z_drift"] = self._log_z - self.first_log_z
        ratios = self._update_ratios(engine.model)
        if ratios:
            row["update_rms_ratio_mean"] = sum(ratios) / len(ratios)
            row["update_rms_ratio_max"] = max(ratios)
        row["grad_spikes"] = self.spikes
        self._before = {}

    def on_train_end(self, engine: Engine) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    # ------------------------------------------------------------------------------ signals
    def _track_grad_norm(self, engine: Engine, grad_norm: float) -> None:
        if self.grad_ema is not None and grad_norm > self.cfg.spike_factor * self.grad_ema:
            self.spikes += 1
            engine.row["grad_spike"] = grad_norm / self.grad_ema
            engine.row["grad_spikes"] = self.spikes
        decay = self.cfg.ema_decay
        self.grad_ema = (
            grad_norm
            if self.grad_ema is None
            else (decay * self.grad_ema + (1 - decay) * grad_norm)
        )

    def _update_ratios(self, model: nn.Module) -> list[float]:
        """rms(W_after - W_before) / rms(W_before) of each weight matrix."""
        ratios = []
        for name, param in _matrices(model):
            before = self._before.get(name)
            if before is None:
                continue
            scale = float(before.float().pow(2).mean().sqrt())
            if scale > 0:
                ratios.append(float((param.detach() - before).float().pow(2).mean().sqrt()) / scale)
        return ratios

    def state_dict(self) -> dict[str, Any]:
        return {"grad_ema": self.grad_ema, "spikes": self.spikes, "first_log_z": self.first_log_z}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.grad_ema = state["grad_ema"]
            self.spikes = int(state["spikes"])
            self.first_log_z = state["first_log_z"]


def _matrices(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The trainable weight matrices (norm gains and biases change by design, not by drift)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
