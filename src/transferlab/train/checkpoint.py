"""Checkpoints of a run: ``checkpoints/step_XXXXXXXX/`` written atomically, the last K kept.

A checkpoint directory holds
- ``model.safetensors``: the model's state dict (tied embeddings are tied in the model's forward,
  so the state dict holds each weight once, as safetensors requires);
- ``train_state.pt``: optimizer, RNG and loader state, step and token counters, made only of
  tensors and plain Python values so that it loads with ``torch.load(weights_only=True)``;
- ``meta.json``: step, tokens, config key, wall time (human- and tool-readable);
- ``COMPLETE``: written last by ``artifacts.atomic_dir`` before the directory is renamed into
  place. A directory without it (or a leftover temporary one) is never loaded.

A run whose weights are sharded (FSDP2 on several processes) writes ``sharded/`` instead of
``model.safetensors`` and the optimizer state (``train.sharded_checkpoint``: every rank its
shards, into rank 0's temporary directory, before rank 0 marks it complete); its last checkpoint
holds ``model.safetensors`` too, gathered from the shards, and ``consolidate_checkpoint`` writes
it into any other. Every reader here takes either kind: a checkpoint of any layout loads into a
model of any layout.

A checkpoint whose files fail to load raises ``CorruptArtifact`` naming its folder, in one line
(never torch's own advice to unpickle with ``weights_only=False``).

``load_run`` rebuilds a run's model from a checkpoint with the run's ``config.yaml`` (the resolved
config, ``model.vocab_size`` filled in) for evaluation and export: the model the run is about,
without the networks only its objective trained (electra's generator, ``objectives.networks``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from transferlab.artifacts import CorruptArtifact, atomic_dir, is_complete
from transferlab.config import ConfigError, RunConfig, validate
from transferlab.objectives.networks import transferred_model
from transferlab.train.distributed import DistContext
from transferlab.train.sharded_checkpoint import (
    full_weights,
    has_shards,
    load_full_optimizer_state,
    load_full_weights,
    read_shards,
    shard_shapes,
    write_shards,
)

CONFIG_FILE = "config.yaml"
TOKENIZER_FILE = "tokenizer.json"
CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "train_state.pt"
META_FILE = "meta.json"
_NAME = re.compile(r"^step_(\d{8})$")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / f"step_{step:08d}"


def checkpoint_step(path: Path) -> int:
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(
            f"{path} is not a checkpoint directory (expected a name like step_00000010)"
        )
    return int(match.group(1))


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of ``run_dir``, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and is_complete(p)]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None; half-written ones are ignored."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    train_state: dict[str, Any],
    meta: dict[str, Any],
    keep: int,
) -> Path:
    """Write the checkpoint of ``step`` atomically, then delete all but the newest ``keep``."""
    final = checkpoint_dir(run_dir, step)
    with atomic_dir(final) as tmp:
        _save_weights(model.state_dict(), tmp / WEIGHTS_FILE)
        _save_state_and_meta(tmp, step, train_state, meta)
    prune_checkpoints(run_dir, keep)
    return final


def save_sharded_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_state: dict[str, Any],
    meta: dict[str, Any],
    keep: int,
    dist: DistContext,
    with_weights: bool = False,
) -> Path:
    """Every rank calls it: each writes its shards of the sharded ``model`` and ``optimizer``
    into rank 0's temporary directory; rank 0 adds ``train_state`` (without the optimizer, which
    the shards hold) and the meta, marks it complete and renames it into place once every shard
    is written, then prunes. ``with_weights`` (the last step) also gathers the whole weights
    into ``model.safetensors``, for readers of single files (HF export, other tools)."""
    final = checkpoint_dir(run_dir, step)
    state = {k: v for k, v in train_state.items() if k != "optimizer"}
    if not dist.is_main:
        _write_sharded(_shared_path(dist, None), model, optimizer, with_weights, dist)
        return final
    with atomic_dir(final) as tmp:
        _write_sharded(_shared_path(dist, tmp), model, optimizer, with_weights, dist)
        _save_state_and_meta(tmp, step, state, {**meta, "sharded": True})
    prune_checkpoints(run_dir, keep)
    return final


def _shared_path(dist: DistContext, path: Path | None) -> Path:
    """Rank 0's ``path`` on every rank (the run directory is shared by all ranks)."""
    holder = [str(path) if path is not None else None]
    torch.distributed.broadcast_object_list(holder, src=0)
    return Path(holder[0])


def _write_sharded(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    with_weights: bool,
    dist: DistContext,
) -> None:
    write_shards(folder, model, optimizer)
    if with_weights:
        weights = full_weights(model)  # collective: every rank takes part, rank 0 gets them
        if dist.is_main:
            _save_weights(weights, folder / WEIGHTS_FILE)


def _save_weights(weights: dict[str, torch.Tensor], file: Path) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    save_file(tensors, str(file), metadata={"format": "pt"})


def _save_state_and_meta(
    folder: Path, step: int, train_state: dict[str, Any], meta: dict[str, Any]
) -> None:
    torch.save(train_state, folder / STATE_FILE)
    (folder / META_FILE).write_text(json.dumps({"step": step, **meta}, indent=2, sort_keys=True))


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Keep the newest ``keep`` complete checkpoints. Leftovers of interrupted writes are removed
    by the next write (``atomic_dir``), and only once their writer is dead."""
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old)


def load_weights(path: Path, model: nn.Module, device: torch.device | str = "cpu") -> None:
    """Load the weights of checkpoint ``path`` into ``model`` (strict): its
    ``model.safetensors``, or its shards when it has no such file (a sharded checkpoint before
    the last step)."""
    path = Path(path)
    if has_shards(path) and not (path / WEIGHTS_FILE).is_file():
        read_shards(path, model)
        return
    try:
        state = load_file(str(path / WEIGHTS_FILE), device=str(device))
    except Exception as exc:  # truncated, garbage, missing: safetensors' errors vary
        raise _corrupt(path, WEIGHTS_FILE, exc) from None
    load_full_weights(model, state)


def load_training_state(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device | str
) -> dict[str, Any]:
    """Load the weights and optimizer state of checkpoint ``path`` (either kind, into a model of
    any layout) and return the rest of its train state (loader, RNG, counters, callbacks)."""
    state = load_train_state(path)
    if has_shards(path):
        read_shards(path, model, optimizer)
    else:
        load_weights(path, model, device=device)
        load_full_optimizer_state(model, optimizer, state["optimizer"])
    return state


def saved_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every weight of checkpoint ``path`` by name, read without loading them."""
    path = Path(path)
    if has_shards(path) and not (path / WEIGHTS_FILE).is_file():
        return shard_shapes(path)
    with safe_open(str(path / WEIGHTS_FILE), framework="pt") as f:
        return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 (not iterable)


def consolidate_checkpoint(path: Path) -> Path:
    """Write ``model.safetensors`` of sharded checkpoint ``path`` from its shards, in this
    process alone (atomically: a reader finds the whole file or none); returns the file. The
    checkpoint stays complete and resumable as it was."""
    path = Path(path)
    if not has_shards(path):
        raise ValueError(f"checkpoint {path} is not sharded; its {WEIGHTS_FILE} is the single file")
    cfg = read_run_config(path.parent.parent)
    model = cfg.objective.build_networks(cfg.model)
    read_shards(path, model)
    tmp = path / f".{WEIGHTS_FILE}.tmp"
    _save_weights(model.state_dict(), tmp)
    os.replace(tmp, path / WEIGHTS_FILE)
    return path / WEIGHTS_FILE


def load_train_state(path: Path) -> dict[str, Any]:
    """The optimizer/RNG/loader state of checkpoint ``path``; never unpickles arbitrary objects."""
    try:
        state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's message advises weights_only=False: never shown
        raise _corrupt(path, STATE_FILE, exc) from None
    if not isinstance(state, dict):
        raise _corrupt(path, STATE_FILE, TypeError(type(state).__name__))
    return state


def _corrupt(path: Path, file: str, exc: Exception) -> CorruptArtifact:
    return CorruptArtifact(
        f"checkpoint {path} is corrupt: its {file} does not load ({type(exc).__name__})"
    )


def set_aside(path: Path) -> Path:
    """Rename a corrupt checkpoint so that it is no longer listed (nor pruned in place of a good
    one); it is kept for inspection."""
    aside = Path(path).with_name(f"{Path(path).name}.corrupt-{uuid.uuid4().hex[:8]}")
    Path(path).rename(aside)
    return aside


def read_meta(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / META_FILE).read_text())


def read_run_config(run_dir: Path) -> RunConfig:
    """The resolved config a run stored in its ``config.yaml``."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; is {run_dir} a run directory?")
    return validate(RunConfig, yaml.safe_load(path.read_text()))


@dataclass
class LoadedRun:
    model: nn.Module  # in eval mode; the transferred model (``objectives.networks``)
    config: RunConfig  # as stored, with model.vocab_size filled in
    tokenizer_path: Path
    step: int


def load_run(
    run_dir: str | Path, step: int | None = None, device: str | torch.device = "cpu"
) -> LoadedRun:
    """The model of a run's latest (or given) complete checkpoint, with its config and tokenizer."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    checkpoint = find_checkpoint(run_dir, step)
    trained = cfg.objective.build_networks(cfg.model)
    load_weights(checkpoint, trained)
    model = transferred_model(trained)
    return LoadedRun(
        model.to(device).eval(), cfg, run_dir / TOKENIZER_FILE, checkpoint_step(checkpoint)
    )


def find_checkpoint(run_dir: Path, step: int | None = None) -> Path:
    """The complete checkpoint of ``step`` (default: the latest) of ``run_dir``."""
    available = [checkpoint_step(p) for p in list_checkpoints(run_dir)]
    wanted = available[-1] if step is None and available else step
    if wanted is None or wanted not in available:
        what = "checkpoint" if step is None else f"checkpoint of step {step}"
        raise ValueError(f"{run_dir} has no {what}; complete checkpoints: steps {available}")
    return checkpoint_dir(run_dir, wanted)
