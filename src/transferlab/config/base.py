"""Base classes every typed config in transferlab derives from."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Tag

# The two shapes of a field that takes one item or a list of them (``one_or_many``); pydantic
# puts the tag into an error's location, which ``format_validation_error`` leaves out again.
ONE, MANY = "<one>", "<many>"


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


def one_or_many(item: type) -> Any:
    """Annotated type of a field holding one ``item`` (a mapping) or a list of them. The value
    keeps its shape; an error names ``field.name`` or ``field.1.name``, never both shapes."""
    return Annotated[
        Annotated[item, Tag(ONE)] | Annotated[list[item], Tag(MANY)],
        Discriminator(lambda value: MANY if isinstance(value, list) else ONE),
    ]
