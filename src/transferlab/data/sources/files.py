"""Finding a source's files (a file, a directory or a glob pattern) and reading one as text."""

from __future__ import annotations

import glob
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from transferlab.data.sources.base import Skip, SourceError, SourceStats

GLOB_CHARS = frozenset("*?[")
SNIFF_BYTES = 1024  # a NUL byte in the first KB marks a file as binary, as git and grep do


@dataclass(frozen=True)
class SourceFile:
    """A file of a source; ``rel`` is its POSIX path relative to the directory the source names
    (the directory itself, or the part of a glob pattern before the first wildcard), used in
    document ids so that they do not depend on where the corpus lives."""

    path: Path
    rel: str


def resolve_files(pattern: str, suffixes: tuple[str, ...], kind: str) -> list[SourceFile]:
    """The files ``pattern`` names, sorted by relative path: the file itself, every file under a
    directory whose name ends with one of ``suffixes``, or every file a glob matches (``**``
    recurses). Raises ``SourceError`` when there is none."""
    expanded = os.path.expanduser(pattern)
    path = Path(expanded)
    if GLOB_CHARS.intersection(expanded):
        root = _glob_root(path)
        paths = [Path(p) for p in glob.glob(expanded, recursive=True) if os.path.isfile(p)]
        if not paths:
            raise SourceError(
                f"{kind}.path: no file matches {pattern!r}; check the pattern "
                "(** matches subdirectories)"
            )
    elif path.is_file():
        root, paths = path.parent, [path]
    elif path.is_dir():
        root = path
        paths = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes)]
        if not paths:
            wanted = " or ".join(f"*{s}" for s in suffixes)
            raise SourceError(
                f"{kind}.path: directory {pattern!r} holds no {wanted} file; point path at such "
                "a file, a directory holding some, or a glob pattern"
            )
    else:
        raise SourceError(
            f"{kind}.path: {pattern!r} does not exist; point path at an existing file, "
            "directory or glob pattern"
        )
    files = [SourceFile(p, p.relative_to(root).as_posix()) for p in paths]
    return sorted(files, key=lambda f: f.rel)


def named_files(pattern: str, suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """The files ``pattern`` names (``resolve_files``), or the pattern itself when it names
    none, so that a key over them says "missing" rather than the planning failing: reading
    the source gives the error."""
    try:
        return [file.path for file in resolve_files(pattern, suffixes, kind)]
    except SourceError:
        return [Path(os.path.expanduser(pattern))]


def _glob_root(pattern: Path) -> Path:
    """The leading part of a glob pattern without wildcards."""
    fixed = []
    for part in pattern.parts:
        if GLOB_CHARS.intersection(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path()


def is_binary(head: bytes) -> bool:
    return b"\x00" in head[:SNIFF_BYTES]


def read_text(file: SourceFile, stats: SourceStats) -> str | None:
    """The whole file as text with newlines normalized to ``\\n`` (as Python's text mode does),
    or None after counting why it is unusable: unreadable, binary, invalid UTF-8 or empty."""
    try:
        data = file.path.read_bytes()
    except OSError:
        stats.skip(Skip.UNREADABLE, file.rel)
        return None
    if is_binary(data):
        stats.skip(Skip.BINARY, file.rel)
        return None
    try:
        text = data.decode("utf-8-sig")  # -sig: a byte-order mark is not part of the text
    except UnicodeDecodeError:
        stats.skip(Skip.INVALID_UTF8, file.rel)
        return None
    if not text or text.isspace():
        stats.skip(Skip.EMPTY, file.rel)
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed on the fly when it ends with ``.gz``."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")
