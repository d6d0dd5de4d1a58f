"""Loading experiment files and recipes: YAML + named presets + dotted overrides, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlab.config import ConfigError, apply_overrides, load_yaml, set_dotted, validate
from transferlab.experiment.spec import ExperimentSpec


def load_experiment(
    path: str | Path, preset: str | None = None, overrides: list[str] = ()
) -> ExperimentSpec:
    """Load an experiment file; ``preset`` applies one entry of its ``presets:`` section (dotted
    overrides of the spec, e.g. ``base.trainer.max_steps: 100``), then ``overrides`` apply."""
    data = load_yaml(path)
    presets: dict[str, Any] = data.pop("presets", {}) or {}
    if preset is not None:
        if preset not in presets:
            raise ConfigError(
                f"{path} has no preset {preset!r}; available presets: {sorted(presets) or 'none'}"
            )
        data = set_dotted(data, presets[preset])
    data = apply_overrides(data, list(overrides))
    return validate(ExperimentSpec, data)


def preset_names(path: str | Path) -> list[str]:
    return sorted(load_yaml(path).get("presets", {}) or {})
