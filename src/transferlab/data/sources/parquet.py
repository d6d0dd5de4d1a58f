"""Parquet files, read in record batches with pyarrow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from transferlab.config.registry import SOURCES
from transferlab.data.sources.base import Skip, SourceStats, TextDocument
from transferlab.data.sources.files import SourceFile, named_files, resolve_files
from transferlab.data.sources.records import RecordSourceConfig

SUFFIXES = (".parquet",)


@SOURCES.register("parquet")
class ParquetConfig(RecordSourceConfig):
    """``path``: a .parquet file, a directory (every .parquet file below it) or a glob.

    Rows are read ``batch_size`` at a time. The default id is ``<relative path>:<row>``
    (0-based); metadata holds ``path``, ``row`` and ``fields``. A file without the configured
    columns raises ``SourceError`` when the pass reaches it.
    """

    name: Literal["parquet"] = "parquet"
    path: str
    batch_size: int = Field(default=1024, gt=0)  # rows per record batch read

    def input_files(self) -> list[Path]:
        return named_files(self.path, SUFFIXES, self.name)

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        return self._read(resolve_files(self.path, SUFFIXES, self.name), stats)

    def _read(self, files: list[SourceFile], stats: SourceStats) -> Iterator[TextDocument]:
        for file in files:
            try:
                yield from self._read_file(file, stats)
            except (OSError, pa.ArrowException):  # not parquet, or corrupt
                stats.skip(Skip.UNREADABLE, file.rel)

    def _read_file(self, file: SourceFile, stats: SourceStats) -> Iterator[TextDocument]:
        table = pq.ParquetFile(file.path)
        self._check_columns(table.schema_arrow.names, file.rel)
        if table.metadata.num_rows == 0:
            stats.skip(Skip.EMPTY, file.rel)
            return
        row = 0
        for batch in table.iter_batches(batch_size=self.batch_size, columns=self._columns()):
            for record in batch.to_pylist():
                location = {"path": file.rel, "row": row}
                doc = self._record_document(record, f"{file.rel}:{row}", location, stats)
                row += 1
                if doc is not None:
                    yield doc
