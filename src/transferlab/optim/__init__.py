"""Optimizers and learning-rate schedules, registered by name; the parameter groups they share."""

from transferlab.optim import adamw, galore, groups, muon, schedules
from transferlab.optim.adamw import AdamSettings, AdamWConfig
from transferlab.optim.combined import CombinedOptimizer
from transferlab.optim.galore import GaLoreAdamW, GaLoreConfig
from transferlab.optim.groups import ParamGroup, param_groups
from transferlab.optim.muon import MuonConfig
from transferlab.optim.schedules import ConstantConfig, CosineConfig, WarmupStableDecayConfig
from transferlab.optim.state_size import (
    TrainingStateBytes,
    optimizer_state_bytes,
    training_state_bytes,
)

__all__ = [
    "AdamSettings",
    "AdamWConfig",
    "CombinedOptimizer",
    "ConstantConfig",
    "CosineConfig",
    "GaLoreAdamW",
    "GaLoreConfig",
    "MuonConfig",
    "ParamGroup",
    "TrainingStateBytes",
    "WarmupStableDecayConfig",
    "adamw",
    "galore",
    "groups",
    "muon",
    "optimizer_state_bytes",
    "param_groups",
    "schedules",
    "training_state_bytes",
]
