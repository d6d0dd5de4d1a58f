"""How one optimizer step's global batch splits into processes and accumulated micro batches."""

from __future__ import annotations

from dataclasses import dataclass

from transferlab.config import ConfigError, TrainerConfig
from transferlab.objectives import Batch


@dataclass(frozen=True)
class BatchPlan:
    batch_size: int  # global, sequences per optimizer step
    micro_batch_size: int  # per process, sequences per forward/backward
    world_size: int
    accumulation_steps: int

    @property
    def rows_per_micro_step(self) -> int:
        """Sequences all processes together consume in one micro step."""
        return self.micro_batch_size * self.world_size


def plan_batches(cfg: TrainerConfig, world_size: int) -> BatchPlan:
    """``batch_size = micro_batch_size * world_size * accumulation_steps``, or a ConfigError."""
    if cfg.batch_size % world_size:
        raise ConfigError(
            f"trainer.batch_size: got {cfg.batch_size}; expected a multiple of the "
            f"{world_size} processes"
        )
    micro = cfg.micro_batch_size or cfg.batch_size // world_size
    per_process = cfg.batch_size // world_size
    if per_process % micro:
        raise ConfigError(
            f"trainer.micro_batch_size: got {micro}; expected a divisor of "
            f"trainer.batch_size / processes = {cfg.batch_size} / {world_size} = {per_process}"
        )
    return BatchPlan(cfg.batch_size, micro, world_size, per_process // micro)


def slice_rows(batch: Batch, start: int, stop: int) -> Batch:
    """Rows ``start:stop`` of every tensor of ``batch`` (the engine never reads its fields)."""
    return {name: tensor[start:stop] for name, tensor in batch.items()}


def batch_rows(batch: Batch) -> int:
    """The number of rows of ``batch`` (all its tensors share the first dimension)."""
    counts = {tensor.shape[0] for tensor in batch.values()}
    if len(counts) != 1:
        raise ValueError(f"batch fields have different row counts {sorted(counts)}")
    return counts.pop()


def local_micro_batches(batch: Batch, plan: BatchPlan, rank: int) -> list[Batch]:
    """Rank ``rank``'s contiguous share of a global batch, cut into its micro batches."""
    share = batch_rows(batch) // plan.world_size
    start = rank * share
    return [
        slice_rows(batch, s, min(s + plan.micro_batch_size, start + share))
        for s in range(start, start + share, plan.micro_batch_size)
    ]
