"""Sources of real text, streamed one document at a time.

Each kind is a config registered in ``SOURCES`` (``text_files``, ``jsonl``, ``parquet``,
``hf_dataset``, ``python_stdlib``, ``python_docs``, ``world_text``) whose ``iter_documents(stats)`` yields ``TextDocument``
records in a deterministic order; ``iter_documents(sources)`` chains several. Bad documents
(empty, binary, invalid UTF-8, absurdly long lines, ...) are skipped and counted in a
``SourceStats``, with one ``SkippedDocumentsWarning`` per pass; see ``base``.
"""

from transferlab.config.registry import SOURCES
from transferlab.data.sources.base import (
    Skip,
    SkippedDocumentsWarning,
    SourceConfig,
    SourceError,
    SourceStats,
    TextDocument,
)
from transferlab.data.sources.chain import iter_documents, iter_texts
from transferlab.data.sources.hf_dataset import HfDatasetConfig
from transferlab.data.sources.jsonl import JsonlConfig
from transferlab.data.sources.parquet import ParquetConfig
from transferlab.data.sources.python_docs import PythonDocsConfig
from transferlab.data.sources.python_stdlib import PythonStdlibConfig, is_heldout
from transferlab.data.sources.records import RecordSourceConfig
from transferlab.data.sources.text_files import TextFilesConfig
from transferlab.data.sources.world_text import WorldTextConfig

__all__ = [
    "SOURCES",
    "HfDatasetConfig",
    "JsonlConfig",
    "ParquetConfig",
    "PythonDocsConfig",
    "PythonStdlibConfig",
    "RecordSourceConfig",
    "Skip",
    "SkippedDocumentsWarning",
    "SourceConfig",
    "SourceError",
    "SourceStats",
    "TextDocument",
    "TextFilesConfig",
    "WorldTextConfig",
    "is_heldout",
    "iter_documents",
    "iter_texts",
]
