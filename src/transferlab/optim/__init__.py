"""Optimizers and learning-rate schedules, registered by name."""

from transferlab.optim import adamw, schedules
from transferlab.optim.adamw import AdamWConfig, split_decay_groups
from transferlab.optim.schedules import ConstantConfig, CosineConfig, WarmupStableDecayConfig

__all__ = [
    "AdamWConfig",
    "ConstantConfig",
    "CosineConfig",
    "WarmupStableDecayConfig",
    "adamw",
    "schedules",
    "split_decay_groups",
]
