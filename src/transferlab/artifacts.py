"""Content-addressed, atomically written artifact directories.

Every stage output lives in a directory named by the hash of what determines it (its config and
the keys of its inputs). A directory is written under a temporary name and renamed into place
only once complete, so a half-written artifact is never mistaken for a finished one, and a second
request for the same key reuses the finished directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

COMPLETE_MARKER = "COMPLETE"


def cache_root() -> Path:
    """Where shared artifacts live: ``$TRANSFERLAB_CACHE`` or ``~/.cache/transferlab``."""
    env = os.environ.get("TRANSFERLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "transferlab"


def content_key(*parts: Any) -> str:
    """Stable 16-hex-digit key of JSON-able parts (dict key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file()


@contextmanager
def atomic_dir(final: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success mark it complete and rename it to ``final``.

    On an exception the temporary directory is removed and ``final`` is left untouched.
    If ``final`` already exists it is replaced only after the new copy is complete, unless
    ``replace`` is False and ``final`` is complete: then the new copy is discarded (another process
    finished the same content-addressed artifact first, and readers may be using it).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("")
        if not replace and is_complete(final):
            shutil.rmtree(tmp, ignore_errors=True)
        elif final.exists():
            trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            final.rename(trash)
            tmp.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cached_dir(final: Path, build: Callable[[Path], None]) -> Path:
    """Return ``final`` if complete, else build it atomically with ``build(tmp_dir)``."""
    if not is_complete(final):
        with atomic_dir(final, replace=False) as tmp:
            build(tmp)
    return final


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
