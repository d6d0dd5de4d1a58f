"""The run directory ``trainer.out_dir/name/``: its layout and the checks before a run starts or
resumes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from transferlab.artifacts import content_key
from transferlab.config import ConfigError, InitConfig, RunConfig
from transferlab.file_digests import sources_fingerprint
from transferlab.train.checkpoint import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    checkpoint_dir,
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    read_run_config,
)

RUN_INFO_FILE = "run_info.json"

# Trainer fields a resumed run may change. None changes what is computed: device, compile,
# micro_batch_size and parallelism change only the arithmetic (float rounding, or bf16 autocast
# when a run with precision=auto moves to a GPU), the others only what is logged, kept and shown.
# max_steps is one of them because extending a finished run is a reason to resume it.
# parallelism (ddp | fsdp) is here, out of the run's key, because FSDP2 computes the same step as
# DDP on the same global batch (the same gradient, summed in another order: measured in
# tests/test_train_fsdp.py) and a checkpoint of either layout resumes in the other.
RESUMABLE_TRAINER_FIELDS = frozenset(
    {
        "max_steps",
        "micro_batch_size",
        "eval_interval",
        "eval_batches",
        "log_interval",
        "checkpoint_interval",
        "keep_checkpoints",
        "device",
        "compile",
        "parallelism",
        "out_dir",
        "progress",
    }
)


def run_dir_of(cfg: RunConfig) -> Path:
    return Path(cfg.trainer.out_dir) / cfg.name


# Fields added after runs were first keyed, with the value that means "as before": left out of
# the key at that value, so runs cached before the field existed keep their key.
ADDED_FIELDS: dict[str, dict[str, Any]] = {
    "trainer": {"callbacks": [], "on_divergence": "raise", "validation_weighting": "mixture"},
    "objective": {"z_loss": 0.0},
    "data": {"tokenizer_scope": "variant"},
    "model": {
        "attention": {"name": "mha"},
        "mlp": {"name": "swiglu"},
        "norm": {"name": "rmsnorm"},
        "linear": {"name": "dense"},
    },
}


# Fields that only say what to report, never what is computed: left out of the key and free to
# change on resume.
REPORTING_FIELDS = {"data": frozenset({"warnings"})}


def diverged_step(root: Path) -> int | None:
    """The step at which the run in ``root`` diverged and ended (``trainer.on_divergence:
    stop``), as its ``run_info.json`` records it; None for a run that did not diverge (or has
    not started)."""
    path = Path(root) / RUN_INFO_FILE
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return int(info["diverged_step"]) if info.get("diverged") else None


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a config dict that determines a run's result: without the resumable trainer
    fields and the ``REPORTING_FIELDS``, and without added fields at their "as before" value."""
    out = dict(config)
    for section, added in ADDED_FIELDS.items():
        out[section] = {k: v for k, v in config[section].items() if added.get(k, _MISSING) != v}
    out["trainer"] = {k: v for k, v in out["trainer"].items() if k not in RESUMABLE_TRAINER_FIELDS}
    # A run of 0 steps is its initialization, another result than any trained run of the same
    # config (which a longer max_steps continues): its max_steps stays in the key.
    if config["trainer"].get("max_steps") == 0:
        out["trainer"]["max_steps"] = 0
    for section, fields in REPORTING_FIELDS.items():
        out[section] = {k: v for k, v in out[section].items() if k not in fields}
    # A run of several domains validates on every domain since validation_weighting exists (its
    # val_loss read mostly the first domain before): new keys, so a run cached under the old
    # measure never mixes into an experiment with runs measured the new way.
    if len(config.get("data", {}).get("sources") or []) > 1:
        out["validation"] = "every_domain"
    return out


_MISSING = object()


def _shown(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without ``trainer.progress``, which only says how a run shows its progress."""
    return {**config, "trainer": {k: v for k, v in config["trainer"].items() if k != "progress"}}


def config_key(cfg: RunConfig, parent_key: str | None = None) -> str:
    """Content key of what determines ``cfg``'s result. A run initialized from another is keyed
    by its own config, its parent's key and the checkpoint step, never the parent's path, so a
    stage is shared like any run. ``parent_key`` defaults to the key the parent's trainer
    recorded in its ``run_info.json``; an experiment passes its planned parent's key instead
    (the parent may not be trained yet)."""
    config = result_config(cfg.to_dict())
    config.pop("init")  # a fresh run hashes exactly as before ``init`` existed
    if cfg.data.left_out():  # such a run trained on every source before they were left out
        config["data"]["left_out"] = cfg.data.left_out()
    # The bytes of the local files it trains on: a run on an edited corpus is a new run. Runs
    # on a world or on sources of no user files keep their keys.
    if files := sources_fingerprint(cfg.data.sources):
        config["data"]["files"] = files
    if cfg.init is None:
        return content_key(config)
    step = cfg.init.step
    if step is None:
        step = checkpoint_step(parent_checkpoint(cfg.init))
    parent = {
        "key": parent_key or recorded_key(cfg.init),
        "step": step,
        "optimizer": cfg.init.optimizer,
    }
    return content_key(config, parent)


def parent_checkpoint(init: InitConfig) -> Path:
    """The complete checkpoint of the parent that ``init`` names (default: its latest)."""
    root = Path(init.from_run)
    if not (root / CONFIG_FILE).is_file():
        raise ConfigError(
            f"init.from_run: {root} is not a run directory (no {CONFIG_FILE}); give a directory "
            "that `transferlab train` wrote"
        )
    available = [checkpoint_step(p) for p in list_checkpoints(root)]
    if not available:
        raise ConfigError(
            f"init.from_run: {root} has no complete checkpoint; finish or resume that run first"
        )
    step = available[-1] if init.step is None else init.step
    if step not in available:
        raise ConfigError(
            f"init.step: {root} has no complete checkpoint of step {step}; available steps: "
            f"{available}"
        )
    return checkpoint_dir(root, step)


def recorded_key(init: InitConfig) -> str:
    """The config key the parent's trainer wrote into its ``run_info.json``."""
    path = Path(init.from_run) / RUN_INFO_FILE
    if not path.is_file():
        raise ConfigError(
            f"init.from_run: {path} does not exist; is {init.from_run} a run directory?"
        )
    return json.loads(path.read_text())["config_key"]


def first_difference(stored: Any, current: Any, path: str = "") -> str | None:
    """Dotted path of the first field where two config dicts differ, or None if equal."""
    if isinstance(stored, dict) and isinstance(current, dict):
        for key in [*stored, *(k for k in current if k not in stored)]:
            found = first_difference(stored.get(key), current.get(key), f"{path}{key}.")
            if found is not None:
                return found
        return None
    return None if stored == current else path.rstrip(".")


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


class RunDir:
    """Paths of one run directory and the checks made before training in it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.config = self.root / CONFIG_FILE
        self.tokenizer = self.root / TOKENIZER_FILE
        self.metrics = self.root / "metrics.jsonl"
        self.run_info = self.root / RUN_INFO_FILE

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.root)

    def check_fresh(self) -> None:
        """A new run must not silently overwrite the checkpoints of an earlier one."""
        if list_checkpoints(self.root):
            raise ConfigError(
                f"run dir {self.root} already has checkpoints; pass --resume to continue it "
                "or choose another name or trainer.out_dir"
            )

    def check_resumable(self, cfg: RunConfig, allow_changes: bool = False) -> None:
        """The stored config must equal ``cfg``: except in ``RESUMABLE_TRAINER_FIELDS`` when
        ``allow_changes`` (the resume then rewrites ``config.yaml``), and always except in
        ``trainer.progress`` (how progress is shown changes nothing of the run)."""
        stored = read_run_config(self.root).to_dict()
        current = cfg.to_dict()
        field = first_difference(result_config(stored), result_config(current))
        if field is not None:
            raise ConfigError(
                f"cannot resume {self.root}: {field} is {_lookup(current, field)!r} but the run "
                f"was started with {_lookup(stored, field)!r}; resume with the stored config or "
                "start a new run (another name or trainer.out_dir)"
            )
        field = None if allow_changes else first_difference(_shown(stored), _shown(current))
        if field is not None:
            raise ConfigError(
                f"resuming {self.root} would change {field} from {_lookup(stored, field)!r} to "
                f"{_lookup(current, field)!r}; pass --allow-changes to resume with the change "
                "(trainer fields that leave the result alone only), or drop the override"
            )

    def write_config(self, cfg: RunConfig) -> None:
        """Write ``config.yaml`` atomically (a resume rewrites it, e.g. with a new max_steps)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.config.with_name(self.config.name + ".tmp")
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        os.replace(tmp, self.config)
