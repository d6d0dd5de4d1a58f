"""Optimizers and learning-rate schedules, registered by name; the parameter groups they share."""

from transferlab.optim import adamw, groups, schedules
from transferlab.optim.adamw import AdamSettings, AdamWConfig
from transferlab.optim.groups import ParamGroup, param_groups
from transferlab.optim.schedules import ConstantConfig, CosineConfig, WarmupStableDecayConfig
from transferlab.optim.state_size import optimizer_state_bytes

__all__ = [
    "AdamSettings",
    "AdamWConfig",
    "ConstantConfig",
    "CosineConfig",
    "ParamGroup",
    "WarmupStableDecayConfig",
    "adamw",
    "groups",
    "optimizer_state_bytes",
    "param_groups",
    "schedules",
]
