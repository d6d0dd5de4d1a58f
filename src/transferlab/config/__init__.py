"""Typed configs, YAML loading with dotted overrides, and component registries."""

from transferlab.config.base import BaseConfig, ComponentConfig
from transferlab.config.loading import (
    ConfigError,
    apply_overrides,
    load_config,
    load_yaml,
    set_dotted,
    validate,
)
from transferlab.config.metrics import IDENTITY_COLUMNS, MetricSpec
from transferlab.config.registry import (
    CALLBACKS,
    MODEL_PRESETS,
    OBJECTIVES,
    OPTIMIZERS,
    SCHEDULES,
    TASKS,
    WORLDS,
    Registry,
)
from transferlab.config.schemas import (
    CallbackConfig,
    DataConfig,
    InitConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimizerConfig,
    RunConfig,
    ScheduleConfig,
    TaskConfig,
    TokenizerConfig,
    TrainerConfig,
    WorldConfig,
)

__all__ = [
    "CALLBACKS",
    "IDENTITY_COLUMNS",
    "MODEL_PRESETS",
    "OBJECTIVES",
    "OPTIMIZERS",
    "SCHEDULES",
    "TASKS",
    "WORLDS",
    "BaseConfig",
    "CallbackConfig",
    "ComponentConfig",
    "ConfigError",
    "DataConfig",
    "InitConfig",
    "MetricSpec",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimizerConfig",
    "Registry",
    "RunConfig",
    "ScheduleConfig",
    "TaskConfig",
    "TokenizerConfig",
    "TrainerConfig",
    "WorldConfig",
    "apply_overrides",
    "load_config",
    "load_yaml",
    "set_dotted",
    "validate",
]
