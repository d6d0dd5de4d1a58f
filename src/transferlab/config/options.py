"""The options of a config class, read from the class itself: name, type, default, constraint
and description, for ``transferlab explain`` and ``docs/reference.md``.

Nothing here is written by hand per component: a newly registered config shows its options the
moment it is registered. A field's description is, in order of preference, its
``Field(description=...)``, the comment beside or right above its line in the class's source,
or the "``field``: text" fragment of a docstring in the class's hierarchy.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from transferlab.config.base import BaseConfig, ComponentConfig
from transferlab.config.registry import Registry

REQUIRED = "required"
# Words whose period ends no sentence ("Rae et al. 2021", "e.g. a list").
_ABBREVIATIONS = ("e.g", "i.e", "et al", "etc", "vs", "cf")
_OPENING = re.compile(r"``(\w+)``: ")
_BOUNDS = (
    (annotated_types.Gt, "gt", "> {}"),
    (annotated_types.Ge, "ge", ">= {}"),
    (annotated_types.Lt, "lt", "< {}"),
    (annotated_types.Le, "le", "<= {}"),
    (annotated_types.MinLen, "min_length", "length >= {}"),
    (annotated_types.MaxLen, "max_length", "length <= {}"),
)


@dataclass(frozen=True)
class Option:
    """One field of a config. ``default`` is the YAML value that means the default (``{}`` for
    a section of defaults, a component's name) or ``required``; ``constraint`` is what the value
    must satisfy (``> 0``), empty when nothing beyond its type."""

    name: str
    type: str
    default: str
    constraint: str
    description: str


def options(model: type[BaseModel]) -> list[Option]:
    """The options of ``model`` in declaration order; a component's ``name`` is left out (it is
    the name the component is looked up by)."""
    described = field_descriptions(model)
    out = []
    for name, info in model.model_fields.items():
        if name == "name" and issubclass(model, ComponentConfig):
            continue
        out.append(
            Option(
                name=name,
                type=field_type(info),
                default=default_text(info),
                constraint=", ".join(field_constraints(info)),
                description=described.get(name, ""),
            )
        )
    return out


def summary(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring, else of its module's (one line). A docstring
    that opens on one of its fields ("``path``: a file ...") describes that field, not the
    class, so the module's is taken; a leading "``name``: " is dropped."""
    module = inspect.getmodule(obj)
    for doc in (obj.__doc__ if inspect.isclass(obj) else None, module and module.__doc__):
        text = first_sentence(doc or "")
        opening = _OPENING.match(text)
        if opening and opening.group(1) in getattr(obj, "model_fields", {}):
            continue
        text = text[opening.end() :] if opening else text
        if text:
            return text
    return ""


def first_sentence(text: str) -> str:
    paragraph = " ".join(text.strip().split("\n\n", 1)[0].split())
    return _clause(paragraph, stops=".")


# ----------------------------------------------------------------------------- types
def type_name(annotation: Any) -> str:
    """How a user writes a value of ``annotation``: ``int``, ``"word" | "bpe"``, ``list[source]``
    (a component of the ``source`` registry), ``mapping`` (a nested section), ``float | null``;
    constraints inside a container are written beside their type."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        registry = next((m for m in annotation.__metadata__ if isinstance(m, Registry)), None)
        if registry is not None:
            return registry.kind
        bounds = _bounds(annotation.__metadata__)
        inner = type_name(args[0])
        return f"{inner} ({', '.join(bounds)})" if bounds else inner
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(json.dumps(value) for value in args)
    if origin in (Union, types.UnionType):
        members = sorted(args, key=lambda arg: arg is type(None))  # null last
        return " | ".join(type_name(arg) for arg in members)
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(type_name(arg) for arg in args)}]" if args else base
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def field_type(info: FieldInfo) -> str:
    """``type_name`` of a field, less the bounds ``field_constraints`` lifts out of it."""
    member = _bounded_optional(info)
    if member is None:
        return type_name(info.annotation)
    return f"{type_name(get_args(member)[0])} | null"


def field_constraints(info: FieldInfo) -> list[str]:
    """The bounds on a field's value: its own, else those of the one non-null member of an
    optional type (``Ratio | None``)."""
    member = _bounded_optional(info)
    return _bounds(info.metadata) if member is None else _bounds(member.__metadata__)


def _bounded_optional(info: FieldInfo) -> Any | None:
    """The ``Annotated`` member of a field typed ``Annotated[X, bounds] | None`` that has no
    bounds of its own, else None."""
    if _bounds(info.metadata) or get_origin(info.annotation) not in (Union, types.UnionType):
        return None
    members = [a for a in get_args(info.annotation) if a is not type(None)]
    bounded = len(members) == 1 and get_origin(members[0]) is Annotated
    return members[0] if bounded and _bounds(members[0].__metadata__) else None


def nested_models(annotation: Any) -> list[type[BaseConfig]]:
    """The config classes a field of ``annotation`` holds directly (not through a registry)."""
    if get_origin(annotation) is Annotated:
        if any(isinstance(m, Registry) for m in annotation.__metadata__):
            return []
        return nested_models(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseConfig):
        return [annotation]
    found = [model for arg in get_args(annotation) for model in nested_models(arg)]
    return list(dict.fromkeys(found))  # ``X | list[X]`` holds X once


def registries_in(annotation: Any) -> list[Registry]:
    """The registries whose components a field of ``annotation`` holds."""
    if get_origin(annotation) is Annotated:
        found = [m for m in annotation.__metadata__ if isinstance(m, Registry)]
        return found or registries_in(get_args(annotation)[0])
    return [registry for arg in get_args(annotation) for registry in registries_in(arg)]


def _bounds(metadata: Any) -> list[str]:
    out = []
    for item in metadata:
        if isinstance(item, FieldInfo):  # ``Annotated[float, Field(ge=0)]`` nests its bounds
            out += _bounds(item.metadata)
        for kind, attribute, text in _BOUNDS:
            if isinstance(item, kind):
                out.append(text.format(getattr(item, attribute)))
    return out


# ----------------------------------------------------------------------------- defaults
def default_text(info: FieldInfo) -> str:
    """The default as YAML that means it: a component by its name, a section as ``{}``."""
    if info.default_factory is not None:
        if info.default_factory_takes_validated_data:
            return "(computed from the other fields)"
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return REQUIRED
    else:
        value = info.default
    if isinstance(value, ComponentConfig):
        return value.name
    if isinstance(value, BaseModel):
        return "{}"
    return json.dumps(to_jsonable_python(value))


# ----------------------------------------------------------------------------- descriptions
def field_descriptions(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> description, from ``Field(description=...)``, else the field's comment in
    the source of the class that declares it, else a docstring of the hierarchy."""
    out = {}
    for name, info in model.model_fields.items():
        owner = _declaring_class(model, name)
        text = (
            info.description
            or _source_comments(owner).get(name)
            or _docstring_fragment(model, name)
        )
        if text:
            out[name] = text
    return out


def _declaring_class(model: type[BaseModel], name: str) -> type:
    for cls in model.__mro__:
        if name in cls.__dict__.get("__annotations__", {}):
            return cls
    return model


@cache
def _source_comments(cls: type) -> dict[str, str]:
    """Field -> its comment: the comment lines right above the field (no blank line between)
    and the comment at the end of any of its lines, joined."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # defined in a REPL or a string: no source to read
        return {}
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        line = node.lineno - 1
        while line in comments and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        beside = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        text = " ".join(above + beside)
        if text:
            out[node.target.id] = text
    return out


def _docstring_fragment(model: type, name: str) -> str | None:
    """The clause of the first docstring of the hierarchy that opens on ``name`` in double
    backticks (at the docstring's start or after a ``.`` or ``;``): the text after
    "``name``: ", or the whole clause ("``limit`` keeps only ..."), up to a ``;`` or a
    sentence's end outside brackets."""
    marker = re.compile(rf"(?:^|(?<=[.;] ))``{re.escape(name)}``(?:(: )|(?=[ (,]))")
    for cls in model.__mro__:
        doc = " ".join((cls.__dict__.get("__doc__") or "").split())
        found = marker.search(doc)
        if found:
            start = found.end() if found.group(1) else found.start()
            return _clause(doc[start:], stops=".;")
    return None


def _clause(text: str, stops: str) -> str:
    """``text`` up to the first of ``stops`` outside brackets that ends a clause (followed by a
    space or the end), including a final period."""
    depth = 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        ends = i + 1 == len(text) or text[i + 1] == " "
        if depth == 0 and char in stops and ends and not text[:i].endswith(_ABBREVIATIONS):
            return text[: i + 1] if char == "." else text[:i]
    return text
