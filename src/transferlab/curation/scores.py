"""Side files: per-document results written as Parquet next to the curated documents.

Scores of the model-based filters (perplexity, classifier) are expensive, their thresholds
cheap to change. A score file is therefore named by a content key of what determines the
scores (the scorer's config without its thresholds, the model, the documents scored) and kept
in a shared directory: a threshold sweep finds the file and only re-selects. The curated output
gets a copy under ``scores/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from transferlab.artifacts import cache_root, temp_path

ROW_GROUP = 8192  # rows buffered before they are written: bounded memory on any corpus
SCORE_SCHEMA = pa.schema([("source", pa.string()), ("id", pa.string()), ("score", pa.float64())])


def default_scores_dir() -> Path:
    return cache_root() / "curation" / "scores"


class ParquetRows:
    """Streams dict rows of a fixed schema into a Parquet file (a context manager)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self._writer = pq.ParquetWriter(path, schema)
        self._rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def __enter__(self) -> ParquetRows:
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def ensure_score_file(path: Path, compute: Callable[[], Iterable[tuple[str, str, float]]]) -> bool:
    """Write ``(source, id, score)`` rows from ``compute()`` to ``path`` unless it exists
    (written under a temporary name, then renamed); True when the file was reused."""
    if path.is_file():
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with ParquetRows(tmp, SCORE_SCHEMA) as rows:
            for source, doc_id, score in compute():
                rows.add({"source": source, "id": doc_id, "score": score})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return False


def read_scores(path: Path) -> np.ndarray:
    """The score column of a score file, in document order."""
    return pq.read_table(path, columns=["score"]).column("score").to_numpy()
