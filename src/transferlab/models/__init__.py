"""Decoder transformer, its fused loss, size presets, parameter/FLOP counts and HF export.

The config registry imports ``transferlab.models.presets`` to resolve ``ModelConfig(preset=...)``,
which runs this file first; torch and transformers are therefore imported only when the model,
the loss or the exporter is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from transferlab.models import presets
from transferlab.models.flops import ParamCount, count_parameters, flops_per_token

_LAZY = {
    "Transformer": "transferlab.models.transformer",
    "build_model": "transferlab.models.transformer",
    "export_llama": "transferlab.models.hf_export",
    "linear_cross_entropy": "transferlab.models.loss",
}

__all__ = [
    "ParamCount",
    "Transformer",
    "build_model",
    "count_parameters",
    "export_llama",
    "flops_per_token",
    "linear_cross_entropy",
    "presets",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transferlab.models' has no attribute {name!r}")
