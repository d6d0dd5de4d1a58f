"""Content-addressed, atomically written artifact directories.

Every stage output lives in a directory named by the hash of what determines it (its config and
the keys of its inputs). A directory is written under a temporary name and renamed into place
only once complete, so a half-written artifact is never mistaken for a finished one, and a second
request for the same key reuses the finished directory.

Temporary names carry the writer's host and pid (``.NAME.tmp-HOST-PID-RANDOM``), so the next
writer in the same folder removes what a killed process left behind, and never what a live one is
still writing. A stage built on demand (``cached_dir``) is built under a lock held by one process
at a time, so processes sharing a cache build each stage once. The ``COMPLETE`` marker names the
artifact's kind, which is how a command tells its own earlier output from a user's folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

COMPLETE_MARKER = "COMPLETE"
log = logging.getLogger(__name__)


class CorruptArtifact(ValueError):
    """A finished artifact's files fail to load or to match what was recorded when written."""


class OutputRefused(ValueError):
    """Writing an output would replace something transferlab did not make, or its own input."""


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


def artifact_kind(path: Path) -> str | None:
    """The kind a complete artifact's marker names ("" for one written before kinds), or None
    for anything else (a missing path, a user's folder or file, a link)."""
    if path.is_symlink() or not is_complete(path):
        return None
    return (path / COMPLETE_MARKER).read_text().strip()


# --------------------------------------------------------------------------- temporary names
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP = re.compile(r"^\..+\.(?:tmp|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}$")


def temp_path(final: Path, what: str = "tmp") -> Path:
    """A hidden sibling of ``final`` that names this writer (host and pid) for stale cleanup."""
    return final.parent / f".{final.name}.{what}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _writer_alive(host: str, pid: int) -> bool:
    if host != _HOST:  # a process on another machine sharing the folder: it cannot be checked
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` whose writer is no longer alive
    (a killed process's leftovers); return what was removed."""
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        match = _TEMP.match(entry.name)
        if match and not _writer_alive(match["host"], int(match["pid"])):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


# --------------------------------------------------------------------------- writing
@contextmanager
def atomic_dir(final: Path, replace: bool = True, kind: str = "") -> Iterator[Path]:
    """Yield a temporary sibling directory; on success mark it complete (the marker holds
    ``kind``) and rename it to ``final``.

    On an exception the temporary directory is removed and ``final`` is left untouched.
    If ``final`` already exists it is replaced only after the new copy is complete, unless
    ``replace`` is False and ``final`` is complete: then the new copy is discarded (another process
    finished the same content-addressed artifact first, and readers may be using it).
    Callers that write to a path a user chose check it first (``check_output``).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final.parent)
    tmp = temp_path(final)
    tmp.mkdir()
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text(kind)
        if not replace and is_complete(final):
            shutil.rmtree(tmp, ignore_errors=True)
        elif final.exists():
            trash = temp_path(final, "old")
            final.rename(trash)
            tmp.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def stage_lock(path: Path) -> Iterator[None]:
    """Hold the lock of the stage written at ``path`` (the file ``.NAME.lock`` beside it), waiting
    while another process holds it. The lock goes with its holder, even one killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.parent / f".{path.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process to finish %s", path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def cached_dir(
    final: Path,
    build: Callable[[Path], None],
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Return ``final`` if complete (and ``verify(final)`` raises no ``CorruptArtifact``), else
    build it atomically with ``build(tmp_dir)``, one process at a time; a corrupt one is rebuilt."""
    if _intact(final, verify, warn=True):
        return final
    with stage_lock(final):
        if _intact(final, verify, warn=False):  # another process built it while this one waited
            return final
        corrupt = is_complete(final)
        with atomic_dir(final, replace=corrupt) as tmp:
            build(tmp)
    return final


def _intact(final: Path, verify: Callable[[Path], None] | None, warn: bool) -> bool:
    if not is_complete(final):
        return False
    try:
        if verify is not None:
            verify(final)
    except CorruptArtifact as exc:
        if warn:
            log.warning("%s; rebuilding %s", exc, final)
        return False
    return True


def check_output(out: Path, kind: str, force: bool, sources: Iterable[Path] = ()) -> None:
    """Refuse (``OutputRefused``, one line) to write a ``kind`` artifact at ``out`` if that would
    delete anything but an earlier ``kind`` artifact, and that only with ``force``: ``out`` must
    not be, hold or lie inside one of ``sources`` (what the output is made from), and an existing
    ``out`` must be an empty folder or a ``kind`` transferlab wrote."""
    here = out.resolve()
    for source in sources:
        there = Path(source).resolve()
        if here == there or here.is_relative_to(there) or there.is_relative_to(here):
            raise OutputRefused(
                f"{out}: the output would replace or lie inside {source}, which it is made from; "
                "choose a path outside it"
            )
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    if artifact_kind(out) == kind:
        if force:
            return
        raise OutputRefused(
            f"{out} already holds a {kind} transferlab wrote; choose another path, or pass "
            "--force to replace it"
        )
    raise OutputRefused(
        f"{out} exists and is not a {kind} transferlab wrote, so it is left as it is; choose "
        f"another path (--force replaces only a {kind} transferlab wrote)"
    )


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = temp_path(path)
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def write_parquet_atomic(table: Any, path: Path) -> None:
    """Write the pyarrow ``table`` to ``path`` by rename, so a file there is complete."""
    import pyarrow.parquet as pq  # not every user of artifacts needs pyarrow loaded

    tmp = temp_path(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)
