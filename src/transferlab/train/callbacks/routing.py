"""Per-domain routing statistics of a mixture of experts
(``trainer.callbacks: [{name: routing, every: 50}]``, with ``model.mlp: {name: moe}``).

Every ``every`` steps and at the last step, the first ``windows`` held-out windows of each data
domain (each real-text source's validation documents, ``data.validation_domains``; a world or a
``data.path`` run has one domain) go through the model in eval mode, without gradients, as the
run's objective reads them, and each MoE layer counts its expert loads: the fraction of the
domain's token-slots (positions times top_k) that went to each expert. The specialization score
is the Jensen-Shannon divergence between two domains' load distributions, in bits (0: the same
loads, 1: disjoint experts), averaged over the pairs of domains, then over the layers.

Logged in ``metrics.jsonl`` (with two domains or more): ``routing_specialization`` and
``routing_js_l<i>`` per layer. The latest measurement is in ``RUN_DIR/routing.json``: ``step``,
``domains``, ``windows`` per domain, ``loads[d][layer][expert]`` (in the order of ``domains``),
``js`` per layer and ``specialization``; the report draws it. Rank 0 measures and writes; the
callback keeps no state (a resumed run measures the same weights on the same windows).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from transferlab.artifacts import write_json_atomic
from transferlab.config.registry import CALLBACKS
from transferlab.config.schemas import CallbackConfig, RunConfig
from transferlab.models.parts.moe import MixtureOfExperts
from transferlab.objectives import Batch
from transferlab.train.batching import batch_rows
from transferlab.train.callbacks.held_out import domain_micro_batches, require_held_out
from transferlab.train.engine import Callback, Engine, StepOutput

ROUTING_FILE = "routing.json"
Loads = list[list[float]]  # [layer][expert]: fractions of a domain's token-slots


@CALLBACKS.register("routing")
class RoutingConfig(CallbackConfig):
    name: Literal["routing"] = "routing"
    every: int = Field(default=50, gt=0)  # steps between measurements (and the last step)
    windows: int = Field(default=16, gt=0)  # held-out windows of data.seq_len per domain

    def check(self, run: RunConfig) -> None:
        if run.model.mlp.name != "moe":
            raise ValueError(
                f"routing callback: model.mlp is {run.model.mlp.name!r}, which routes nothing; "
                "set model.mlp.name=moe or drop the callback"
            )
        require_held_out(run, "routing", "route")

    def build(self) -> RoutingCallback:
        return RoutingCallback(self)


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence of two distributions in bits: in [0, 1]."""
    p_arr, q_arr = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    middle = (p_arr + q_arr) / 2
    return 0.5 * _kl_bits(p_arr, middle) + 0.5 * _kl_bits(q_arr, middle)


def _kl_bits(p: np.ndarray, q: np.ndarray) -> float:
    support = p > 0  # 0 log 0 = 0; q > 0 wherever p > 0 (q is a mixture holding p)
    return float(np.sum(p[support] * np.log2(p[support] / q[support])))


def layer_divergences(loads: Sequence[Loads]) -> list[float]:
    """Per layer, the mean Jensen-Shannon divergence over the pairs of domains' loads."""
    pairs = list(itertools.combinations(loads, 2))
    n_layers = len(loads[0])
    return [float(np.mean([js_divergence(a[i], b[i]) for a, b in pairs])) for i in range(n_layers)]


def read_routing(run_dir: Path) -> dict[str, Any] | None:
    """The latest routing measurement of a run, None when it has none."""
    path = Path(run_dir) / ROUTING_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class RoutingCallback(Callback):
    name = "routing"
    main_process_only = True

    def __init__(self, cfg: RoutingConfig) -> None:
        self.cfg = cfg
        self._held_out: dict[str, list[Batch]] | None = None

    def on_train_start(self, engine: Engine) -> None:
        if engine.run_dir is None:
            raise ValueError(
                "the routing callback needs a run directory (it reads the run's data and "
                "writes routing.json)"
            )

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if engine.step % self.cfg.every and engine.step != engine.max_steps:
            return
        if not engine.dist.is_main:
            return
        loads = self.measure(engine)
        if not loads:
            return
        record: dict[str, Any] = {
            "step": engine.step,
            "domains": list(loads),
            "windows": {d: sum(batch_rows(m) for m in self._held_out[d]) for d in loads},
            "loads": list(loads.values()),
        }
        if len(loads) > 1:
            js = layer_divergences(list(loads.values()))
            record |= {"js": js, "specialization": float(np.mean(js))}
            engine.row["routing_specialization"] = record["specialization"]
            engine.row |= {f"routing_js_l{i}": value for i, value in enumerate(js)}
        write_json_atomic(engine.run_dir / ROUTING_FILE, record)

    def measure(self, engine: Engine) -> dict[str, Loads]:
        """Per domain, each MoE layer's expert loads on the domain's held-out windows."""
        held_out = self._windows(engine)
        layers = [m for m in engine.model.modules() if isinstance(m, MixtureOfExperts)]
        was_training = engine.model.training
        engine.model.eval()
        loads = {}
        try:
            for domain, micro_batches in held_out.items():
                for layer in layers:
                    layer.start_recording()
                with torch.no_grad():
                    for micro in micro_batches:
                        engine.micro_loss(engine.model, micro)
                counts = [layer.stop_recording() for layer in layers]
                loads[domain] = [(c / c.sum()).tolist() for c in counts]
        finally:
            engine.model.train(was_training)
        return loads

    def _windows(self, engine: Engine) -> dict[str, list[Batch]]:
        """Each domain's held-out windows as micro batches, made once (every measurement reads
        the same inputs)."""
        if self._held_out is None:
            self._held_out = domain_micro_batches(engine, self.cfg.windows, "routing")
        return self._held_out
