"""Content fingerprints of the user files a stage reads, for its key.

A stage that reads a user's file by path (a jsonl corpus, a task's items, an lm-eval task YAML)
is keyed by that path in its config; the fingerprint adds what the path held, so editing the file
in place gives the stage a new key and it is computed again instead of reused. A file is hashed
(sha256 of its bytes) once per process per (path, size, mtime_ns): a big corpus is read once
however many stages name it, and read again as soon as it is touched.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MISSING = "missing"  # the digest of a path that names no file: its stage is keyed as unreadable
CHUNK = 1 << 20

_digests: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of the bytes of ``path``, or ``MISSING`` if it is no file."""
    try:
        stat = os.stat(path)
    except OSError:
        return MISSING
    where = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if where not in _digests:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
        _digests[where] = hasher.hexdigest()
    return _digests[where]


def files_fingerprint(paths: Iterable[Path]) -> list[list[str]]:
    """``[path, sha256]`` of each distinct path, sorted by path: what a key holds of the files
    a stage reads (the path too, so a file that moves between two names the stage reads
    changes the key)."""
    return [[str(path), file_sha256(path)] for path in sorted({Path(p) for p in paths})]


def sources_fingerprint(sources: Iterable[Any]) -> list[list[str]]:
    """``files_fingerprint`` of the files of ``sources`` (``SourceConfig.input_files``)."""
    return files_fingerprint(path for source in sources for path in source.input_files())
