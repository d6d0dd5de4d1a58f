"""YAML loading, dotted command-line overrides and one-line config errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from transferlab.config.base import MANY, ONE

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line naming field, value and expectation."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing a mapping that repeats a key: PyYAML would keep the last
    value silently, so a size, axis level or field written twice would quietly vanish."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f"key {key!r} appears twice in one mapping; give each a distinct name",
                    problem_mark=key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; a missing, directory, unparsable or empty file is a
    one-line ConfigError (an empty file would otherwise silently mean "all defaults")."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a directory; pass the path of a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass the path of a YAML file")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader: no object tags
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    if data is None:
        raise ConfigError(
            f"{path}: the file is empty; write the config's fields in it "
            "(or leave the file out to use every default)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line L, column C: problem`` (1-based, as editors count) of a YAML error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied (values parsed as YAML)."""
    pairs = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        try:
            pairs[key] = _parse_value(raw)
        except yaml.YAMLError as exc:  # the first line of YAML's own message, not its traceback
            raise ConfigError(
                f"override {item!r}: the value is not valid YAML ({str(exc).splitlines()[0]}); "
                "quote it, e.g. key='value'"
            ) from None
    return set_dotted(data, pairs)


def set_dotted(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted key (``model.d_model``) set to its value. A
    numeric part indexes a list: ``data.sources.0.limit`` is the first source's ``limit``."""
    data = copy.deepcopy(data)
    for key, value in values.items():
        node: Any = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = _section(node, part, f"{key}={value!r}")
        if isinstance(node, list):
            node[_list_index(node, parts[-1], f"{key}={value!r}")] = copy.deepcopy(value)
        else:
            node[parts[-1]] = copy.deepcopy(value)
    return data


def _section(node: dict[str, Any] | list[Any], part: str, override: str) -> Any:
    """The mapping or list under ``part`` of ``node``, created (or expanded from a component
    name) where a mapping is missing."""
    if isinstance(node, list):
        index = _list_index(node, part, override)
        child = node[index]
        if isinstance(child, str):  # a component given by name: expand to a mapping
            child = node[index] = {"name": child}
    else:
        child = node.setdefault(part, {})
        if isinstance(child, str):
            child = node[part] = {"name": child}
    if not isinstance(child, dict | list):
        raise ConfigError(f"override {override}: {part!r} is a value, not a section")
    return child


def _list_index(node: list[Any], part: str, override: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        valid = f"use 0 to {len(node) - 1}" if node else "give the whole list instead"
        raise ConfigError(
            f"override {override}: {part!r} is not an index of a list of {len(node)} "
            f"item(s); {valid}"
        )
    return int(part)


def _parse_value(raw: str) -> Any:
    """YAML scalar parsing, plus floats like 1e-3 that YAML 1.1 reads as strings."""
    value = yaml.safe_load(raw) if raw else ""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def format_validation_error(exc: ValidationError) -> str:
    """One line: ``field: got VALUE; expected ...`` for the first error, plus a count of others."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"] if p not in (ONE, MANY)) or "config"
    msg = first["msg"]
    for prefix in ("Value error, ", "Input should be "):
        msg = msg.removeprefix(prefix)
    if first["type"] == "value_error":  # our validators' messages name the fields themselves
        text = f"{loc}: {msg}" if first["loc"] else msg
    elif first["type"] == "extra_forbidden":
        text = f"{loc}: unknown field (value {first['input']!r}); remove it or fix its spelling"
    elif first["type"] == "missing":
        text = f"{loc}: missing; expected a value"
    else:
        text = f"{loc}: got {_short(first['input'])}; expected {_lower_first(msg)}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lower_first(msg: str) -> str:
    return msg[:1].lower() + msg[1:]


def validate(schema: type[T], data: dict[str, Any]) -> T:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def load_config(schema: type[T], path: str | Path | None, overrides: list[str] = ()) -> T:
    """Load ``path`` (or start from defaults), apply overrides and validate against ``schema``."""
    data = load_yaml(path) if path is not None else {}
    return validate(schema, apply_overrides(data, list(overrides)))
