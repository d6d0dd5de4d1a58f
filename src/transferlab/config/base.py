"""Base classes every typed config in transferlab derives from."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class BaseConfig(BaseModel):
    """A strict, immutable config: unknown fields are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (round-trips through the schema)."""
        return self.model_dump(mode="json", serialize_as_any=True)


class ComponentConfig(BaseConfig):
    """Config of a component looked up by name in a registry (an objective, a world, ...).

    Subclasses are registered with ``@REGISTRY.register("name")``; ``name`` selects the class when a
    config is parsed from YAML, and ``build()`` turns the config into the component.
    """

    name: str
