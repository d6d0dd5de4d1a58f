"""How one optimizer step's global batch splits into processes and accumulated micro batches."""

from __future__ import annotations

from dataclasses import dataclass, replace

from transferlab.config import ConfigError, TrainerConfig
from transferlab.objectives import ObjectiveBatch


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


def slice_rows(batch: ObjectiveBatch, start: int, stop: int) -> ObjectiveBatch:
    """Rows ``start:stop`` of every per-row tensor of ``batch``."""
    prefix_len = None if batch.prefix_len is None else batch.prefix_len[start:stop]
    return replace(
        batch,
        inputs=batch.inputs[start:stop],
        targets=batch.targets[start:stop],
        prefix_len=prefix_len,
    )


def local_micro_batches(batch: ObjectiveBatch, plan: BatchPlan, rank: int) -> list[ObjectiveBatch]:
    """Rank ``rank``'s contiguous share of a global batch, cut into its micro batches."""
    share = batch.inputs.shape[0] // plan.world_size
    start = rank * share
    return [
        slice_rows(batch, s, min(s + plan.micro_batch_size, start + share))
        for s in range(start, start + share, plan.micro_batch_size)
    ]
