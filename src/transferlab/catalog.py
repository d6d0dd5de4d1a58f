"""What a user can write: every config file section and every registered component, with its
options (``config.options``), for ``transferlab components``, ``transferlab explain`` and the
generated ``docs/reference.md``.

The catalog is built from the code each time: the registries (``config.registry.REGISTRIES``, all
of them, loaded) and the sections reachable from the three file kinds' root configs, so a new
component, option or section appears without being listed anywhere.
"""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from transferlab.config.options import Option, nested_models, options, registries_in, summary
from transferlab.config.registry import REGISTRIES, Registry
from transferlab.config.schemas import ObjectiveConfig, RunConfig, TaskConfig

SECTION = "config"  # the kind of a config file's section, beside the registries' kinds
# Keys of an experiment file that its loader reads before the schema sees the rest.
EXTRA_OPTIONS = {
    "experiment": [
        Option(
            "presets",
            "dict[str, dict[str, any]]",
            "{}",
            "",
            "Named sets of dotted overrides of this file (``quick: {trainer.max_steps: 50}``), "
            "applied with ``--preset NAME``.",
        )
    ]
}


@dataclass(frozen=True)
class Entry:
    """A config section (``kind`` ``config``, ``name`` its dotted path such as ``run.trainer``)
    or a registered component (``kind`` its registry's, e.g. ``source``)."""

    kind: str
    name: str
    target: Any  # a config class, or a registered value (a model preset's fields)

    @property
    def key(self) -> str:
        """``KIND/NAME``, unique in the catalog."""
        return f"{self.kind.replace(' ', '_')}/{self.name}"

    @property
    def summary(self) -> str:
        if isinstance(self.target, type):
            return summary(self.target)
        return ", ".join(f"{k}={v}" for k, v in self.target.items())

    def options(self) -> list[Option]:
        if not isinstance(self.target, type):
            return []
        return options(self.target) + EXTRA_OPTIONS.get(self.name, [])


def roots() -> dict[str, type[BaseModel]]:
    """The configs of the files a user writes: a run config (``transferlab train``), an
    experiment file (``transferlab run``) and a curation job (``transferlab data curate``)."""
    from transferlab.curation.job import CurationJob
    from transferlab.experiment.spec import ExperimentSpec

    return {"run": RunConfig, "experiment": ExperimentSpec, "curation_job": CurationJob}


def registries() -> list[Registry]:
    """Every registry with its entries loaded; loading one may create another, so until none
    is new."""
    done: list[Registry] = []
    while len(done) < len(REGISTRIES):
        for registry in REGISTRIES[len(done) :]:
            registry.names()
            done.append(registry)
    return done


def sections(path: str, model: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel]]]:
    """``(path, model)`` and, depth first, every section nested in ``model``'s fields."""
    yield path, model
    for name, info in model.model_fields.items():
        for nested in nested_models(info.annotation):
            yield from sections(f"{path}.{name}", nested)


def catalog() -> list[Entry]:
    """The config sections, then each registry's components by name."""
    entries = [
        Entry(SECTION, path, model)
        for root, model in roots().items()
        for path, model in sections(root, model)
    ]
    for registry in registries():
        entries += [Entry(registry.kind, name, registry.get(name)) for name in registry.names()]
    return entries


def used_in(registry: Registry, entries: list[Entry]) -> list[str]:
    """Where a component of ``registry`` is written: the fields that hold one, as
    ``section.field`` (or ``kind name.field`` inside another component)."""
    places = []
    for entry in entries:
        if not isinstance(entry.target, type):
            continue
        for path, model in sections(entry.name, entry.target):
            for field, info in model.model_fields.items():
                if registry in registries_in(info.annotation):
                    prefix = "" if entry.kind == SECTION else f"{entry.kind} "
                    places.append(f"{prefix}{path}.{field}")
    return list(dict.fromkeys(places))  # a component's sections repeat in the walk


def find(query: str, entries: list[Entry]) -> Entry:
    """The entry ``query`` names: ``KIND/NAME``, a name, or the end of a section's dotted path
    (``trainer`` for ``run.trainer``); a ValueError naming the candidates otherwise."""
    if "/" in query:
        matches = [e for e in entries if e.key == query or f"{e.kind}/{e.name}" == query]
    else:
        matches = [e for e in entries if e.name == query]
        matches = matches or [
            e for e in entries if e.kind == SECTION and e.name.endswith(f".{query}")
        ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        keys = ", ".join(e.key for e in matches)
        raise ValueError(f"{query!r} is ambiguous: {keys}; name one as KIND/NAME")
    names = sorted({e.name for e in entries} | {e.key for e in entries})
    close = difflib.get_close_matches(query, names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(
        f"nothing named {query!r}; {hint}`transferlab components` lists every component"
    )


def facts(entry: Entry) -> list[str]:
    """What a component declares beside its options: a task's metrics and the models it reads,
    an objective's attention (and its reading, where that is not its attention)."""
    target = entry.target
    if not isinstance(target, type):
        return []
    if issubclass(target, TaskConfig):
        metrics = "; ".join(f"{m.name} ({m.direction}): {m.description}" for m in target.metrics)
        return [f"metrics: {metrics or 'none'}", f"reads: {', '.join(target.readings)} models"]
    if issubclass(target, ObjectiveConfig):
        reading = target.model_construct().reading  # a property: it may read the options
        read_as = [] if reading == target.attention else [f"read by tasks as: {reading}"]
        return [f"attention: {target.attention}", *read_as]
    return []


# ----------------------------------------------------------------------------- text
def option_line(option: Option) -> str:
    """``name: type = default (constraint)``, or ``name: type, required``."""
    if option.default == "required":
        line = f"{option.name}: {option.type}, required"
    else:
        line = f"{option.name}: {option.type} = {option.default}"
    return f"{line} ({option.constraint})" if option.constraint else line


def explain_text(entry: Entry, entries: list[Entry], width: int = 96) -> str:
    """Everything about one entry, for the terminal."""
    what = "section" if entry.kind == SECTION else entry.kind
    lines = [f"{what} {entry.name}: {entry.summary}"]
    registry = _registry_of(entry)
    if registry is not None and used_in(registry, entries):
        lines.append(f"written in: {', '.join(used_in(registry, entries))}")
    lines += facts(entry)
    for path, model, opts in _blocks(entry):
        if path != entry.name:
            lines += ["", f"{path}: {summary(model)}"]
        lines += [""] if opts else []
        for option in opts:
            lines.append(option_line(option))
            if option.description:
                lines += textwrap.wrap(
                    option.description, width, initial_indent="    ", subsequent_indent="    "
                )
    return "\n".join(lines)


def components_text(entries: list[Entry]) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Per registry: its plural heading and ``(name, summary)`` of each component."""
    for registry in registries():
        yield (
            f"{registry.kind}s",
            [(e.name, e.summary) for e in entries if e.kind == registry.kind],
        )


def _registry_of(entry: Entry) -> Registry | None:
    return next((r for r in registries() if r.kind == entry.kind), None)


def _blocks(entry: Entry) -> Iterator[tuple[str, type[BaseModel] | None, list[Option]]]:
    """The entry's own options, then those of each section nested in it (a component's; a
    config section's nested sections are entries of their own)."""
    if not isinstance(entry.target, type):
        yield entry.name, None, []
        return
    if entry.kind == SECTION:
        yield entry.name, entry.target, entry.options()
        return
    for path, model in sections(entry.name, entry.target):
        yield path, model, options(model) if path != entry.name else entry.options()


# ----------------------------------------------------------------------------- markdown
REFERENCE_HEADER = """\
# Reference

Every option of every config file section and of every registered component, generated from
the code by `transferlab explain --all --markdown > docs/reference.md`; do not edit it by hand
(a test fails when it is out of date). `transferlab explain NAME` prints one entry in the
terminal, `transferlab components` lists the components. A default is written as the YAML that
means it: a section's `{}` is all its defaults, a component's name is that component with its
defaults.
"""


def reference_markdown(entries: list[Entry]) -> str:
    """``docs/reference.md``: the config sections, then each registry's components."""
    out = [REFERENCE_HEADER, "## Config files", ""]
    for entry in entries:
        if entry.kind == SECTION:
            out += _entry_markdown("###", entry, entries)
    out += ["## Components", ""]
    for registry in registries():
        out += [f"### {registry.kind.capitalize()}s", ""]
        places = used_in(registry, entries)
        if places:
            out += [f"Written in: {', '.join(f'`{p}`' for p in places)}.", ""]
        for entry in entries:
            if entry.kind == registry.kind:
                out += _entry_markdown("####", entry, entries)
    return "\n".join(out).rstrip("\n") + "\n"


def _entry_markdown(heading: str, entry: Entry, entries: list[Entry]) -> list[str]:
    out = [f"{heading} `{entry.name}`", "", _cell(entry.summary), ""]
    out += [f"- {_cell(fact)}" for fact in facts(entry)]
    out += [""] if facts(entry) else []
    for path, _model, opts in _blocks(entry):
        if path != entry.name:
            out += [f"`{path}`:", ""]
        if opts:
            out += _table(opts)
    return out


def _table(opts: list[Option]) -> list[str]:
    rows = [
        "| option | type | default | constraint | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in opts:
        cells = (f"`{o.name}`", f"`{o.type}`", f"`{o.default}`", o.constraint, o.description)
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*rows, ""]


def _cell(text: str) -> str:
    """``text`` safe in one markdown table cell: no line breaks, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
