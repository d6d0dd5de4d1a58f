"""Pretraining objectives, one module each, registered in ``OBJECTIVES`` by name."""

from transferlab.objectives import clm, mlm
from transferlab.objectives.base import IGNORE_INDEX, Objective, ObjectiveBatch
from transferlab.objectives.clm import CausalLM, ClmConfig
from transferlab.objectives.mlm import MaskedLM, MlmConfig

__all__ = [
    "IGNORE_INDEX",
    "CausalLM",
    "ClmConfig",
    "MaskedLM",
    "MlmConfig",
    "Objective",
    "ObjectiveBatch",
    "clm",
    "mlm",
]
