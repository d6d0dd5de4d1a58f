"""The local files an ``lm_eval`` config's results depend on, so its evaluations are keyed by
what they hold (``TaskConfig.input_files``): the task YAML files it names, every YAML and Python
file of its ``include`` folders, and, followed from each YAML, the YAMLs it ``include``s, the
Python modules of its ``!function`` hooks, its local ``dataset_path`` (a file or folder) and its
``dataset_kwargs.data_files``. Relative data files are read from ``dataset_path`` when that is a
local folder, else from the working directory, as ``datasets`` reads them; a glob counts every
file it matches, and a named file that is not there counts as missing.

What is not local is not followed: tasks of lm-eval's own catalog (fixed by the installed lm-eval)
and hub datasets, nor files that only a hook's Python code opens. A YAML that does not parse is
still hashed itself.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

YAML_SUFFIXES = (".yaml", ".yml")
GLOB_CHARS = frozenset("*?[")


class FunctionRef(str):
    """The value of a ``!function module.name`` tag: a hook in ``module.py`` beside the YAML."""


class _TaskYamlLoader(yaml.SafeLoader):
    """A safe loader that reads lm-eval's ``!function`` tags as ``FunctionRef``s and any other
    tag as None (nothing is executed or imported)."""


_TaskYamlLoader.add_constructor(
    "!function", lambda loader, node: FunctionRef(loader.construct_scalar(node))
)
_TaskYamlLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def lm_eval_files(tasks: list[str], include: list[str]) -> list[Path]:
    """Every local file the lm-eval ``tasks`` (names and YAML paths) and ``include`` folders
    read, sorted."""
    queue = [Path(task) for task in tasks if task.endswith(YAML_SUFFIXES)]
    for folder in include:
        wanted = (*YAML_SUFFIXES, ".py")
        queue += [p for p in Path(folder).rglob("*") if p.is_file() and p.name.endswith(wanted)]
    found: set[Path] = set()
    while queue:
        path = queue.pop()
        if path not in found:
            found.add(path)
            if path.name.endswith(YAML_SUFFIXES):
                queue += named_by(path)
    return sorted(found)


def named_by(path: Path) -> list[Path]:
    """The local files the task YAML at ``path`` names (see the module docstring)."""
    try:
        config = yaml.load(path.read_text(), Loader=_TaskYamlLoader)  # noqa: S506 (safe loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    if not isinstance(config, dict):
        return []
    here = path.parent
    named = [here / str(name) for name in _as_list(config.get("include"))]
    named += [here / (ref.rsplit(".", 1)[0].replace(".", "/") + ".py") for ref in _refs(config)]
    dataset = config.get("dataset_path")
    base = Path.cwd()
    if isinstance(dataset, str) and Path(dataset).exists():
        root = Path(dataset)
        named += sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        base = root if root.is_dir() else base
    kwargs = config.get("dataset_kwargs")
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    for name in _data_file_names(files):
        named += _expanded(base / name)
    return named


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _refs(node: Any) -> Iterator[FunctionRef]:
    """Every ``!function`` value anywhere in a parsed YAML."""
    if isinstance(node, FunctionRef):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _data_file_names(files: Any) -> list[str]:
    """The file names of ``data_files``: one, a list, or a list (or one) per split."""
    values = files.values() if isinstance(files, dict) else [files]
    return [str(name) for value in values for name in _as_list(value)]


def _expanded(path: Path) -> list[Path]:
    """The files a glob matches, or the path itself (possibly missing)."""
    if GLOB_CHARS.intersection(str(path)):
        return sorted(p for p in map(Path, glob.glob(str(path), recursive=True)) if p.is_file())
    return [path]
