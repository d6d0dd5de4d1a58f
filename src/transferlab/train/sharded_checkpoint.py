"""The shards of a checkpoint of an FSDP2 run, through ``torch.distributed.checkpoint`` (DCP).

A run whose weights are sharded (``trainer.parallelism: fsdp`` on several processes) writes its
model and optimizer state as ``sharded/`` inside the checkpoint directory (``train.checkpoint``
writes the rest and marks it complete): every rank writes its own file of shards
(``__R_0.distcp``), then rank 0 writes DCP's ``.metadata`` once all of them are written, so the
folder is whole when rank 0 returns. The tensors are stored by name (``model.blocks.0.attn...``,
``optimizer.state...``) with their global shapes; DCP reshards on load, so the shards load into a
model of any layout: sharded over another number of ranks, a DDP replica, a single process.
Nothing is unpickled on load: DCP's metadata and the tensors' bytes only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint import CheckpointException, FileSystemReader
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule

from transferlab.artifacts import CorruptArtifact

SHARDED_DIR = "sharded"
_FULL = StateDictOptions(full_state_dict=True)


def is_sharded(model: nn.Module) -> bool:
    """True for a model whose parameters FSDP2 sharded (``DistContext.shard``)."""
    return isinstance(model, FSDPModule)


def has_shards(checkpoint: Path) -> bool:
    return (Path(checkpoint) / SHARDED_DIR).is_dir()


def write_shards(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every rank writes its shards of ``model`` and ``optimizer`` into ``checkpoint/sharded``
    (collective: all ranks call it with the same folder)."""
    state = {
        "model": get_model_state_dict(model),
        "optimizer": get_optimizer_state_dict(model, optimizer),
    }
    dcp.save(state, checkpoint_id=Path(checkpoint) / SHARDED_DIR)


def read_shards(
    checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> None:
    """Load ``checkpoint/sharded`` into ``model`` (and ``optimizer``), whatever their layout. A
    sharded model reads collectively (every rank its shards); a plain one reads the whole
    tensors in this process alone, so rank 0 of a run can load a checkpoint by itself."""
    state: dict[str, Any] = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        # Built before the first step, the optimizer holds no state yet: DCP fills the state
        # the optimizer creates for this (torch initializes it with a step of lr 0).
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    try:
        with warnings.catch_warnings():  # DCP warns that no_dist reads in one process: intended
            warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
            dcp.load(
                state, checkpoint_id=Path(checkpoint) / SHARDED_DIR, no_dist=not is_sharded(model)
            )
    # Missing, truncated or foreign files: DCP's errors vary, and it gathers every rank's into
    # a CheckpointException, which is a BaseException
    except (Exception, CheckpointException) as exc:
        raise CorruptArtifact(
            f"checkpoint {checkpoint} is corrupt: its {SHARDED_DIR}/ does not load "
            f"({type(exc).__name__})"
        ) from None
    # DCP fills the tensors in place; setting the dicts applies what is not a tensor (the
    # optimizer's parameter groups) and copies into a plain model's parameters.
    set_model_state_dict(model, state["model"])
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, state["optimizer"])


def shard_shapes(checkpoint: Path) -> dict[str, tuple[int, ...]]:
    """The global shape of every model tensor in ``checkpoint/sharded``, by state-dict name."""
    metadata = FileSystemReader(Path(checkpoint) / SHARDED_DIR).read_metadata()
    prefix = "model."
    return {
        name.removeprefix(prefix): tuple(entry.size)
        for name, entry in metadata.state_dict_metadata.items()
        if name.startswith(prefix)
    }


def full_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole weights of a sharded ``model`` on rank 0's CPU, gathered one tensor at a time
    (collective; the other ranks get an empty dict)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def load_full_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load whole tensors (a single-file checkpoint's) into ``model``: each rank of a sharded
    model keeps its shards of them."""
    if is_sharded(model):
        set_model_state_dict(model, weights, options=_FULL)
    else:
        model.load_state_dict(weights, strict=True)


def load_full_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any]
) -> None:
    """Load an ``optimizer.state_dict()`` of the whole model (a single-file checkpoint's, keyed
    by parameter index) into ``optimizer``; each rank of a sharded model keeps its shards. The
    indices follow the optimizer's parameter groups in order, which name the parameters."""
    if not is_sharded(model):
        optimizer.load_state_dict(saved)
        return
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    by_name = {
        "state": {order[int(index)]: value for index, value in saved["state"].items()},
        "param_groups": [
            {**group, "params": [order[int(i)] for i in group["params"]]}
            for group in saved["param_groups"]
        ],
    }
    set_optimizer_state_dict(model, optimizer, by_name, options=_FULL)
