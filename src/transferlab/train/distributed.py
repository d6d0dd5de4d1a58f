"""Data-parallel training with torch.distributed, launched by torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them the run is a single process and every
collective here is a no-op. Only rank 0 writes files (metrics, checkpoints, progress); the other
ranks read the same run directory and wait at barriers around checkpoint writes (a sharded
checkpoint is the exception: every rank writes its shards, ``train.sharded_checkpoint``).

``trainer.parallelism`` chooses how several processes hold the model, and this module alone
applies it: ``ddp`` keeps a full replica on every rank and all-reduces gradients
(``DistContext.wrap``, after the optimizer is built); ``fsdp`` shards every parameter, its
gradient and its optimizer state over the ranks with FSDP2's ``fully_shard``, each transformer
block a unit and the root the rest (``DistContext.shard``, before the optimizer is built, since
sharding replaces the parameters). A single process ignores the choice: it trains the plain
model and writes single-file checkpoints either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel

from transferlab.models.transformer import Block
from transferlab.train.device import resolve_device

Parallelism = Literal["ddp", "fsdp"]

T = TypeVar("T")


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # True when we created the process group (and so destroy it)
    parallelism: Parallelism = "ddp"  # trainer.parallelism: how several processes hold the model

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

    @property
    def shards(self) -> bool:
        """True when the model's weights are sharded over the ranks (FSDP2 on several
        processes): checkpoints are then written shard by shard."""
        return self.enabled and self.parallelism == "fsdp"

    def shard(self, model: nn.Module, param_dtype: torch.dtype | None = None) -> nn.Module:
        """Shard ``model`` in place with FSDP2 when ``shards``: every transformer block (the
        objective's own networks' too) is one unit, gathered for its forward and backward
        only, and the root holds the rest (embedding, final norm, head). ``param_dtype`` (bf16
        autocast) gathers the weights in that dtype and reduces gradients in fp32; None keeps
        fp32 throughout. Call it before building the optimizer (the parameters become
        DTensors); without ``shards`` the model is returned as it is."""
        if not self.shards:
            return model
        # The inputs are left as they come (no cast_forward_inputs): a block's Context holds the
        # rotary tables, which stay fp32 as under DDP's autocast, and the hidden states arrive
        # in the dtype of the unit before.
        policy = (
            MixedPrecisionPolicy()
            if param_dtype is None
            else MixedPrecisionPolicy(
                param_dtype=param_dtype, reduce_dtype=torch.float32, cast_forward_inputs=False
            )
        )
        for block in [m for m in model.modules() if isinstance(m, Block)]:
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step runs: ``model`` DDP-wrapped on several processes with
        ``ddp``; ``model`` itself alone or when it is already sharded (``shard``)."""
        if not self.enabled or self.shards:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    @contextmanager
    def gradient_sync(self, model: nn.Module, sync: bool) -> Iterator[None]:
        """Within it, backward reduces gradients over the ranks only when ``sync`` (the last
        micro batch of a step); earlier micro batches accumulate locally. ``model`` is what
        ``wrap`` returned."""
        if sync or not self.enabled:
            yield
        elif isinstance(model, FSDPModule):
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)
        else:
            with model.no_sync():
                yield

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_name: str, parallelism: Parallelism = "ddp") -> DistContext:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size == 1:
        return DistContext(0, 1, 0, device, parallelism=parallelism)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, device, owns, parallelism)
