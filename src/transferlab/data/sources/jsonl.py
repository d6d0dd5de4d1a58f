"""JSON Lines files, plain or gzip-compressed, read one line at a time."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import Field

from transferlab.config.registry import SOURCES
from transferlab.data.sources.base import Skip, SourceStats, TextDocument
from transferlab.data.sources.files import (
    SNIFF_BYTES,
    SourceFile,
    is_binary,
    named_files,
    open_binary,
    resolve_files,
)
from transferlab.data.sources.records import RecordSourceConfig

DRAIN_CHUNK = 1 << 20  # the rest of an oversized line is skipped in pieces of this size

SUFFIXES = (".jsonl", ".jsonl.gz")


@SOURCES.register("jsonl")
class JsonlConfig(RecordSourceConfig):
    """``path``: a .jsonl or .jsonl.gz file, a directory (every such file below it) or a glob.

    One document per line holding a JSON object; blank lines are ignored. The default id is
    ``<relative path>:<line>`` (1-based); metadata holds ``path``, ``line`` and ``fields``. A
    line longer than ``max_record_bytes`` is skipped without being held in memory.
    """

    name: Literal["jsonl"] = "jsonl"
    path: str
    # skip a longer line (counted as oversized_record) without holding it in memory
    max_record_bytes: int = Field(default=64 << 20, gt=0)

    def input_files(self) -> list[Path]:
        return named_files(self.path, SUFFIXES, self.name)

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        return self._read(resolve_files(self.path, SUFFIXES, self.name), stats)

    def _read(self, files: list[SourceFile], stats: SourceStats) -> Iterator[TextDocument]:
        for file in files:
            try:
                with open_binary(file.path) as handle:
                    yield from self._read_file(file, handle, stats)
            except (OSError, EOFError, zlib.error):  # unreadable, or a corrupt/truncated gzip
                stats.skip(Skip.UNREADABLE, file.rel)

    def _read_file(
        self, file: SourceFile, handle: BinaryIO, stats: SourceStats
    ) -> Iterator[TextDocument]:
        if is_binary(handle.peek(SNIFF_BYTES)):
            stats.skip(Skip.BINARY, file.rel)
            return
        any_line = False
        for number, line in bounded_lines(handle, self.max_record_bytes):
            where = f"{file.rel}:{number}"
            if line is None:
                stats.skip(Skip.OVERSIZED_RECORD, where)
                continue
            if not line.strip():
                continue
            any_line = True
            record = _parse(line, where, stats)
            if record is not None:
                location = {"path": file.rel, "line": number}
                doc = self._record_document(record, where, location, stats)
                if doc is not None:
                    yield doc
        if not any_line:
            stats.skip(Skip.EMPTY, file.rel)


def _parse(line: bytes, where: str, stats: SourceStats) -> dict | None:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        stats.skip(Skip.INVALID_UTF8, where)
        return None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):
        stats.skip(Skip.INVALID_JSON, where)
        return None
    return record


def bounded_lines(handle: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line)`` from 1, with None in place of a line longer than ``max_bytes``
    (newline excluded), whose bytes are read and dropped in chunks, never held whole."""
    number = 0
    while line := handle.readline(max_bytes + 1):
        number += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = handle.readline(DRAIN_CHUNK)
            yield number, None
        else:
            yield number, line
