"""Data-parallel training with torch.distributed, launched by torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them the run is a single process and every
collective here is a no-op. Only rank 0 writes files (metrics, checkpoints, progress); the other
ranks read the same run directory and wait at barriers around checkpoint writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from transferlab.train.device import resolve_device

T = TypeVar("T")


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # True when we created the process group (and so destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def main_first(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0, then on the others (e.g. build a cached artifact once)."""
        if self.is_main:
            result = fn()
        self.barrier()
        if not self.is_main:
            result = fn()
        return result

    def reduce_sum(self, *values: float) -> list[float]:
        """Sum each value over all ranks (one collective, float64)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is True on any rank (ranks must stop at the same step)."""
        return self.reduce_sum(float(flag))[0] > 0 if self.enabled else flag

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP-wrap ``model`` when running on several processes."""
        if not self.enabled:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_name: str) -> DistContext:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size == 1:
        return DistContext(0, 1, 0, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, device, owns_group=owns)
