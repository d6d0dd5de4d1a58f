"""The Python standard library's own source code: a real code corpus present on every machine.

Files are those of the running interpreter (``sysconfig.get_paths()["stdlib"]``), or of any
directory of Python sources given as ``root``. Only importable modules are read: directories and
files whose names are identifiers, which leaves out ``site-packages``, ``lib-dynload`` and the
build's ``config-*`` directory, and ``__pycache__``.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sysconfig
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from transferlab.config.registry import SOURCES
from transferlab.data.sources.base import (
    Skip,
    SourceConfig,
    SourceError,
    SourceStats,
    TextDocument,
)
from transferlab.data.sources.files import SourceFile, read_text

TEST_DIRS = frozenset({"test", "tests", "idle_test"})
DEFINITION_KINDS = {
    ast.FunctionDef: "function",
    ast.AsyncFunctionDef: "function",
    ast.ClassDef: "class",
}


@SOURCES.register("python_stdlib")
class PythonStdlibConfig(SourceConfig):
    """Python source files in sorted path order, split per file or per top-level definition.

    ``split: file``: id is the path relative to the root (``json/__init__.py``); metadata holds
    ``module`` (dotted, ``json``) and ``path``. ``split: function``: one document per top-level
    function or class, decorators included (id ``json/__init__.py::dumps``, ``#2`` appended to
    a name defined again in the same file); metadata adds ``name``, ``kind`` (function or
    class) and the 1-based inclusive ``line_start`` and ``line_end``. Code outside definitions
    is not part of any document in that mode.

    ``modules`` keeps only the named modules and their submodules (``["json", "textwrap"]``);
    test packages (directories test, tests, idle_test) are left out unless ``include_tests``.

    ``side`` picks files by the seeded held-out split the code tasks evaluate on (see
    ``is_heldout``; ``heldout_fraction`` and ``heldout_seed`` must match the tasks'):
    ``pretraining`` leaves the held-out files out, as a corpus for a model judged on those tasks
    must; ``heldout`` keeps only them; ``all`` (the default) ignores the split.
    """

    name: Literal["python_stdlib"] = "python_stdlib"
    split: Literal["file", "function"] = "file"  # one document per file or per definition
    include_tests: bool = False  # also read the test packages (test, tests, idle_test)
    modules: list[str] | None = None
    root: str | None = None  # the directory of Python sources read; None: this stdlib
    # every file, the files off the code tasks' held-out split (a corpus for a model they
    # judge), or only the held-out ones
    side: Literal["all", "pretraining", "heldout"] = "all"
    # share of the files held out (give the code tasks' heldout_fraction)
    heldout_fraction: float = Field(default=0.25, gt=0, lt=1)
    heldout_seed: int = 0  # seeds the held-out split of files (give the code tasks' seed)

    def source_root(self) -> Path:
        """The directory read: ``root``, or the running interpreter's standard library."""
        if self.root is not None:
            return Path(self.root).expanduser()
        return Path(sysconfig.get_paths()["stdlib"])

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        root = self.source_root()
        if not root.is_dir():
            raise SourceError(
                f"python_stdlib.root: {str(root)!r} is not a directory; point root at a "
                "directory of Python sources, or leave it unset for the standard library"
            )
        files = self._files(root)
        if not files:
            raise SourceError(
                f"python_stdlib: no module under {str(root)!r} matches modules={self.modules} "
                f"(include_tests={self.include_tests}, side={self.side}); check the module "
                "names, or read another side of the held-out split"
            )
        return self._read(files, stats)

    def _files(self, root: Path) -> list[tuple[SourceFile, str]]:
        """(file, dotted module name) of every selected module, sorted by relative path."""
        found = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if self._descend(d)]
            for name in names:
                if name.endswith(".py") and name[:-3].isidentifier():
                    path = Path(folder) / name
                    rel = path.relative_to(root).as_posix()
                    module = module_name(rel)
                    if self._selected(module, rel):
                        found.append((SourceFile(path, rel), module))
        return sorted(found, key=lambda item: item[0].rel)

    def _descend(self, directory: str) -> bool:
        if not directory.isidentifier() or directory == "__pycache__":
            return False
        return self.include_tests or directory not in TEST_DIRS

    def _selected(self, module: str, rel: str) -> bool:
        if self.side != "all":
            held = is_heldout(rel, self.heldout_fraction, self.heldout_seed)
            if held != (self.side == "heldout"):
                return False
        if self.modules is None:
            return True
        return any(module == m or module.startswith(m + ".") for m in self.modules)

    def _read(
        self, files: list[tuple[SourceFile, str]], stats: SourceStats
    ) -> Iterator[TextDocument]:
        for file, module in files:
            source = read_text(file, stats)
            if source is None:
                continue
            if self.split == "file":
                meta = {"module": module, "path": file.rel}
                yield TextDocument(file.rel, source, self.source_name, meta)
            else:
                yield from self._definitions(file, module, source, stats)

    def _definitions(
        self, file: SourceFile, module: str, source: str, stats: SourceStats
    ) -> Iterator[TextDocument]:
        try:
            with warnings.catch_warnings():  # e.g. invalid escape sequences: not our concern here
                warnings.simplefilter("ignore")
                tree = ast.parse(source, filename=file.rel)
        except (SyntaxError, ValueError):
            stats.skip(Skip.SYNTAX_ERROR, file.rel)
            return
        lines = source.split("\n")  # the same line numbering as the parser's once normalized
        seen: Counter[str] = Counter()
        for node in tree.body:
            kind = DEFINITION_KINDS.get(type(node))
            if kind is None:
                continue
            seen[node.name] += 1
            doc_id = f"{file.rel}::{node.name}"
            if seen[node.name] > 1:
                doc_id += f"#{seen[node.name]}"
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            meta = {
                "module": module,
                "path": file.rel,
                "name": node.name,
                "kind": kind,
                "line_start": start,
                "line_end": node.end_lineno,
            }
            yield TextDocument(
                doc_id, definition_source(lines, start, node), self.source_name, meta
            )


def is_heldout(path: str, fraction: float, seed: int) -> bool:
    """Whether the file at ``path`` (relative to the corpus root) is on the held-out side of the
    split: ``sha256(f"{seed}:{path}")``, read as a number in [0, 1), is below ``fraction``. A
    file's side depends only on its path and the seed, never on which other files are read, and
    a larger fraction only moves files into the held-out side."""
    digest = hashlib.sha256(f"{seed}:{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def module_name(rel: str) -> str:
    """Dotted module name of a path relative to the root: ``json/__init__.py`` -> ``json``."""
    parts = rel.removesuffix(".py").split("/")
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def definition_source(lines: list[str], start: int, node: ast.stmt) -> str:
    """Exact source of a top-level definition from line ``start`` (1-based): as
    ``ast.get_source_segment`` gives it, but with the decorators. A top-level statement starts
    at column 0; ``end_col_offset`` counts UTF-8 bytes."""
    last = lines[node.end_lineno - 1].encode("utf-8")[: node.end_col_offset].decode("utf-8")
    return "\n".join([*lines[start - 1 : node.end_lineno - 1], last])
