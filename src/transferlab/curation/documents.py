"""Curated documents on disk: one JSON object per line, gzip-compressed, streamed both ways.

Each line is ``{"id", "source", "text", "metadata"}``, so a document read back is the
``TextDocument`` that was written, its original source name included (``read_documents``). The
file is also a plain jsonl.gz that the ``jsonl`` source reads (``id_field: id``). The gzip header
carries no timestamp, so the same documents always give the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from transferlab.data.sources import TextDocument

T = TypeVar("T")
FAST_LEVEL = 1  # for intermediate files read back once; the final output is compressed more
FINAL_LEVEL = 6


class DocumentWriter:
    """Appends documents to a jsonl.gz file (a context manager); ``count`` is how many so far
    and ``digest()`` a hash of their (source, id, text) in order."""

    def __init__(self, path: Path, level: int = FINAL_LEVEL) -> None:
        self.path = path
        self.count = 0
        self._hash = hashlib.sha256()
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=level, mtime=0)
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8")

    def write(self, doc: TextDocument) -> None:
        record = {"id": doc.id, "source": doc.source, "text": doc.text, "metadata": doc.metadata}
        self._text.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        update_digest(self._hash, doc)
        self.count += 1

    def digest(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        self._text.close()  # closes the gzip stream, which writes its trailer
        self._raw.close()

    def __enter__(self) -> DocumentWriter:
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_documents(path: str | Path) -> Iterator[TextDocument]:
    """The documents of a file written by ``DocumentWriter``, in order, one at a time."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist; pass a documents.jsonl.gz file")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            yield TextDocument(record["id"], record["text"], record["source"], record["metadata"])


def update_digest(hasher: hashlib._Hash, doc: TextDocument) -> None:
    """Feed (source, id, text) to ``hasher`` unambiguously: each part is length-prefixed."""
    for part in (doc.source, doc.id, doc.text):
        data = part.encode("utf-8")
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)


def count_tokens(text: str) -> int:
    """Whitespace-separated tokens: the unit of the token counts in curation statistics."""
    return len(text.split())


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` consecutive items (the last one may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
