"""One engine step of a tiny mixture-of-experts model on a fixed global batch, shared by the
global-balance tests and the two-process (torchrun) launch they run.

The batch's two halves hold disjoint token ranges and the routers are scaled up, so micro
batches route very differently from the global batch: micro- and global-batch balancing then
give clearly different losses and gradients.
"""

from __future__ import annotations

from typing import Any

import torch

from transferlab.config import ModelConfig
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.models import build_model
from transferlab.models.parts.moe import MixtureOfExperts
from transferlab.objectives import ClmConfig
from transferlab.train.batching import BatchPlan
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Engine, LoopSettings

VOCAB, SEQ_LEN, ROWS, TOP_K = 64, 16, 8, 2
SINGLE = DistContext(0, 1, 0, torch.device("cpu"))


class FixedBatch:
    """A batch source that yields the same global batch every step."""

    def __init__(self, batch: torch.Tensor) -> None:
        self.batch = batch

    def global_batch(self) -> torch.Tensor:
        return self.batch

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def global_batch() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    low = torch.randint(4, 34, (ROWS // 2, SEQ_LEN + 1), generator=gen)
    high = torch.randint(34, VOCAB, (ROWS // 2, SEQ_LEN + 1), generator=gen)
    return torch.cat([low, high])


def moe_engine(balance: str, micro_batch_size: int, dist: DistContext = SINGLE) -> Engine:
    cfg = ModelConfig(
        vocab_size=VOCAB,
        d_model=32,
        n_layers=2,
        n_heads=2,
        mlp={
            "name": "moe",
            "n_experts": 4,
            "top_k": TOP_K,
            "balance": balance,
            "balance_coef": 0.5,
            "router_z_coef": 0.01,
        },
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.router.weight.mul_(20)
    objective = ClmConfig().build(SpecialTokenIds(pad=0, bos=1, eos=2, mask=3), VOCAB)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # the update is minus the gradient
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    accumulation = ROWS // dist.world_size // micro_batch_size
    plan = BatchPlan(ROWS, micro_batch_size, dist.world_size, accumulation)
    settings = LoopSettings(max_steps=1, seed=0, precision="fp32")
    source = FixedBatch(global_batch())
    return Engine(model, objective, source, optimizer, lambda step: 1.0, plan, settings, dist)


def one_step(balance: str, micro_batch_size: int, dist: DistContext = SINGLE) -> dict[str, Any]:
    """The step's losses, the expert loads each MoE layer was handed (none when the step is one
    micro batch on one process), and every parameter's update, as plain lists."""
    engine = moe_engine(balance, micro_batch_size, dist)
    before = {name: p.detach().clone() for name, p in engine.model.named_parameters()}
    handed: list[list[float]] = []
    original = MixtureOfExperts.set_step_statistics

    def spy(module: MixtureOfExperts, sums: torch.Tensor | None) -> None:
        if sums is not None:
            handed.append(sums.tolist())
        original(module, sums)

    MixtureOfExperts.set_step_statistics = spy
    try:
        out = engine.train_step()
    finally:
        MixtureOfExperts.set_step_statistics = original
    updates = {
        name: (p.detach() - before[name]).flatten().tolist()
        for name, p in engine.model.named_parameters()
    }
    return {"loss": out.loss, "metrics": out.metrics, "loads": handed, "updates": updates}
