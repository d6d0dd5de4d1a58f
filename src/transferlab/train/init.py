"""Stage initialization: a run that starts from another run's checkpoint (``RunConfig.init``).

The child takes the parent's weights and, with ``init.optimizer``, its optimizer state (the
moments, not the hyperparameters: the child's own lr, weight decay and schedule apply). Nothing
else carries over: the child counts its steps from 0, so its schedule (warmup included) starts
afresh, and its data order and objective draws are seeded from its own ``seed``. A child that
resumes its own checkpoint is not initialized again; the trainer calls this only for a fresh run.

The child's data may differ from its parent's (other sources, another world, a curated variant:
continued pretraining): ``data_config`` has it read with the parent's tokenizer, so the token ids,
vocabulary and model shape stay the parent's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transferlab.config import ConfigError, RunConfig
from transferlab.data.prepare import data_key
from transferlab.objectives.tokens import run_tokenizer_json
from transferlab.train.checkpoint import (
    TOKENIZER_FILE,
    load_train_state,
    load_weights,
    read_run_config,
    saved_shapes,
)
from transferlab.train.run_dir import RUN_INFO_FILE, parent_checkpoint, run_dir_of
from transferlab.train.sharded_checkpoint import (
    has_shards,
    load_full_optimizer_state,
    read_shards,
)

log = logging.getLogger(__name__)


def check_init(cfg: RunConfig) -> Path | None:
    """The parent checkpoint ``cfg.init`` names (None for a fresh run), after the checks that
    need no model: the parent exists and has that step, the child writes elsewhere, and an
    optimizer state to take comes from the same kind of optimizer."""
    if cfg.init is None:
        return None
    parent = Path(cfg.init.from_run)
    if parent.resolve() == run_dir_of(cfg).resolve():
        raise ConfigError(
            f"init.from_run: {parent} is this run's own directory; a child writes its own run "
            "directory (give another name or trainer.out_dir)"
        )
    checkpoint = parent_checkpoint(cfg.init)
    parent_optimizer = read_run_config(parent).optimizer.name
    if cfg.init.optimizer and parent_optimizer != cfg.optimizer.name:
        raise ConfigError(
            f"init.optimizer: {parent} trained with optimizer {parent_optimizer!r} but this run "
            f"uses {cfg.optimizer.name!r}; their states do not transfer; set init.optimizer: false"
        )
    return checkpoint


def data_config(cfg: RunConfig) -> RunConfig:
    """The config whose data stage ``cfg`` trains on: ``cfg`` itself, except that a child (with
    ``init``) whose corpus differs from its parent's reads it with the parent's tokenizer
    (``data.tokenizer_file`` = the parent's ``tokenizer.json``; the data key holds its bytes, not
    the path). A child with the parent's very data keeps the parent's data stage. Fails before
    any work when the child asks for another tokenizer than its parent's."""
    if check_init(cfg) is None:
        return cfg
    parent = Path(cfg.init.from_run)
    tokenizer = parent / TOKENIZER_FILE
    if cfg.data.tokenizer_file is not None or cfg.data.path is not None:
        given = Path(cfg.data.tokenizer_file)
        if given.is_file() and given.read_bytes() != tokenizer.read_bytes():
            raise ConfigError(
                f"data.tokenizer_file: {given} is not the tokenizer of the parent {parent}; a "
                f"child reads its parent's token ids, so give {tokenizer} or drop the field"
            )
        return cfg
    _check_tokenizer_section(cfg, read_run_config(parent), parent)
    if data_key(cfg) == _parent_data_key(parent):
        return cfg
    return cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"tokenizer_file": str(tokenizer)})}
    )


def _check_tokenizer_section(cfg: RunConfig, parent_cfg: RunConfig, parent: Path) -> None:
    """A child cannot train a tokenizer of its own: refuse a tokenizer section that differs
    from the one its parent trained with (rather than ignore it)."""
    if parent_cfg.data.tokenizer_file is not None:  # the parent read a file: no section applied
        return
    ours, theirs = cfg.tokenizer.to_dict(), parent_cfg.tokenizer.to_dict()
    field = next((k for k in ours if ours[k] != theirs.get(k)), None)
    if field is not None:
        raise ConfigError(
            f"tokenizer.{field}: {ours[field]!r} here but the parent {parent} trained its "
            f"tokenizer with {theirs.get(field)!r}; a child reads its parent's tokenizer, so "
            "keep the parent's tokenizer section"
        )


def _parent_data_key(parent: Path) -> str | None:
    """The data key the parent trained on, as its trainer recorded it (None when it did not:
    the child then reads its data with the parent's tokenizer file, which is always right)."""
    path = parent / RUN_INFO_FILE
    return json.loads(path.read_text()).get("data_key") if path.is_file() else None


def initialize_from_parent(
    cfg: RunConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    tokenizer_path: Path,
    device: torch.device | str = "cpu",
) -> Path | None:
    """Load the parent's weights (and optimizer state) into a freshly built ``model`` and
    ``optimizer``; returns the checkpoint used, or None when ``cfg`` has no ``init``.

    ``tokenizer_path`` is the tokenizer of the child's data: with the child objective's added
    tokens it must be the parent's, or the weights would read other token ids than they were
    trained on."""
    checkpoint = check_init(cfg)
    if checkpoint is None:
        return None
    parent = Path(cfg.init.from_run)
    if (parent / TOKENIZER_FILE).read_bytes() != run_tokenizer_json(tokenizer_path, cfg.objective):
        raise ConfigError(
            f"init.from_run: {parent} was trained with another tokenizer than this run's data "
            "builds; a child must read its parent's token ids, so keep data and tokenizer "
            "sections that build the same tokenizer"
        )
    _check_shapes(checkpoint, model, read_run_config(parent).model.to_dict(), cfg.model.to_dict())
    load_weights(checkpoint, model, device=device)
    if cfg.init.optimizer:
        _load_moments(model, optimizer, checkpoint, parent)
    log.info("initialized from %s (optimizer state: %s)", checkpoint, cfg.init.optimizer)
    return checkpoint


def _check_shapes(
    checkpoint: Path, model: nn.Module, parent: dict[str, Any], child: dict[str, Any]
) -> None:
    """The parent's tensors must fit the child's model one for one; the error names the first
    model field that differs (a width, a depth, the vocabulary ...)."""
    saved = saved_shapes(checkpoint)
    wanted = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if saved == wanted:
        return
    fields = [k for k in child if k != "preset" and parent.get(k) != child.get(k)]
    what = (
        f"model.{fields[0]} is {child[fields[0]]!r} here but {parent.get(fields[0])!r} in the "
        "parent"
        if fields
        else f"tensors {sorted(set(saved) ^ set(wanted))[:3]} differ"
    )
    raise ConfigError(
        f"init.from_run: the parent's weights do not fit this model: {what}; a child keeps its "
        "parent's model shape"
    )


def _load_moments(
    model: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Path, parent: Path
) -> None:
    """Take the per-parameter state of the parent's optimizer and keep this optimizer's
    hyperparameters."""
    if has_shards(checkpoint):
        _load_sharded_moments(model, optimizer, checkpoint)
        return
    saved = load_train_state(checkpoint)["optimizer"]
    current = optimizer.state_dict()
    sizes = [len(group["params"]) for group in current["param_groups"]]
    if sizes != [len(group["params"]) for group in saved["param_groups"]]:
        raise ConfigError(
            f"init.optimizer: the parameter groups of {parent} do not match this run's "
            f"({sizes} parameters per group here); set init.optimizer: false"
        )
    moments = {"state": saved["state"], "param_groups": current["param_groups"]}
    load_full_optimizer_state(model, optimizer, moments)


def _load_sharded_moments(
    model: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Path
) -> None:
    """The moments of a sharded checkpoint (an fsdp parent's), matched by parameter name (so
    however the groups split the parameters); the shards bring the parent's hyperparameters
    too, which this run's then replace."""
    own = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    read_shards(checkpoint, model, optimizer)  # the weights once more, the same ones
    for group, hyperparameters in zip(optimizer.param_groups, own, strict=True):
        group.update(hyperparameters)
