"""Registries: components looked up by name, so a new one is one new file plus a test.

A registry maps a name to the config class of a component. Configs reference components as
``{name: clm, ...}`` (or just ``clm``); the registry validates the mapping against the class
registered under that name. The package holding the components is imported lazily on first
lookup, which keeps ``config`` free of imports from the packages that depend on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, SerializeAsAny

from transferlab.config.base import ComponentConfig

C = TypeVar("C", bound=type)

# Every registry in the order created, so ``transferlab components`` and the reference list a new
# registry without being told of it.
REGISTRIES: list[Registry] = []


class Registry:
    """Name -> registered object (a config class, or a preset value)."""

    def __init__(self, kind: str, *packages: str) -> None:
        self.kind = kind
        self.packages = packages  # imported on first lookup: importing them registers entries
        self._entries: dict[str, Any] = {}
        self._loaded = False
        REGISTRIES.append(self)

    def register(self, name: str) -> Callable[[C], C]:
        def decorator(obj: C) -> C:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def add(self, name: str, value: Any) -> None:
        """Register a value (not a class), e.g. a model preset."""
        self.register(name)(value)

    def _load(self) -> None:
        if not self._loaded:
            for package in self.packages:
                importlib.import_module(package)
            self._loaded = True

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def get(self, name: str) -> Any:
        self._load()
        if not isinstance(name, str):  # from YAML a name may be anything; `in` needs a hashable
            raise ValueError(
                f"{self.kind} name {name!r} is not a string; expected one of {self.names()}"
            )
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; expected one of {self.names()}")
        return self._entries[name]

    def parse(self, value: Any, default: str | None = None) -> Any:
        """Validate ``value`` (a name, a mapping with ``name``, or a config) into a config object.

        A mapping without ``name`` (e.g. from the override ``schedule.warmup_steps=10``) means the
        ``default`` component.
        """
        if isinstance(value, ComponentConfig):
            return value
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and "name" not in value and default is not None:
            value = {"name": default, **value}
        if not isinstance(value, dict) or "name" not in value:
            raise ValueError(f"expected a {self.kind} name or a mapping with 'name'")
        return self.get(value["name"]).model_validate(value)

    def type(self, base: type, default: str | None = None) -> Any:
        """Annotated type of a value holding a component of this registry (e.g. a list item);
        a mapping without ``name`` means ``default`` (None: ``name`` is required). The registry itself rides along in the
        metadata (pydantic ignores it), so ``config.options`` can name the kind a field holds."""
        return Annotated[
            SerializeAsAny[base], BeforeValidator(lambda v: self.parse(v, default)), self
        ]

    def field(self, base: type, default: str) -> Any:
        """A config field holding a component of this registry, ``default`` when not given."""
        return Annotated[
            self.type(base, default), Field(default_factory=lambda: self.parse(default))
        ]


WORLDS = Registry("world", "transferlab.worlds")
OBJECTIVES = Registry("objective", "transferlab.objectives")
OPTIMIZERS = Registry("optimizer", "transferlab.optim")
SCHEDULES = Registry("schedule", "transferlab.optim")
MODEL_PRESETS = Registry("model preset", "transferlab.models.presets")
TASKS = Registry("task", "transferlab.evaluate")
# Quantities of an experiment's training runs (final loss, steps to a target, a logged metric):
# one file each in ``transferlab.experiment.measures``.
MEASURES = Registry("measure", "transferlab.experiment.measures")
# Extra training callbacks; downstream evaluation during training registers from evaluate.
CALLBACKS = Registry("callback", "transferlab.train.callbacks", "transferlab.evaluate")
# The parts a model's blocks are composed of: one file each in ``transferlab.models.parts``.
ATTENTIONS = Registry("attention", "transferlab.models.parts")
MLPS = Registry("mlp", "transferlab.models.parts")
NORMS = Registry("norm", "transferlab.models.parts")
LINEARS = Registry("linear", "transferlab.models.parts")
# ``curated`` (a source after a curation pipeline) lives with curation, which reads sources.
SOURCES = Registry("source", "transferlab.data.sources", "transferlab.curation.source")
# Heuristic quality filters of a curation pipeline (``curation.filters``).
FILTERS = Registry("filter", "transferlab.curation")
# Scorers of text (generated samples, training segments): one file each in transferlab.scorers.
SCORERS = Registry("scorer", "transferlab.scorers")
