"""``curated``: another source after a curation pipeline, usable wherever a source is.

This is what makes curation an axis of an experiment: a run's ``data.sources`` may hold
``{name: curated, source: {...}, curation: {...}}``, and an axis may vary the curation like any
other field (``data.sources: [...]`` per variant, or an override such as
``data.sources.0.curation.perplexity.keep=[head]``).

The pipeline runs once per (source config, curation config): its output directory is cached
content-addressed under ``cache_root()/curation/sources/<key>`` and written complete or not at
all, so every run and seed that names the same curation streams the same kept documents, and
``transferlab data inspect`` reads what it removed (``curated_dir()`` says where). The key
hashes the configs and, for sources on local files, the files' bytes (``file_digests``): after
a file behind the source changes, the next use curates again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from transferlab.artifacts import cache_root, cached_dir, content_key
from transferlab.config.registry import SOURCES
from transferlab.curation.corpus import SourceField
from transferlab.curation.documents import read_documents
from transferlab.curation.pipeline import DOCUMENTS_FILE, CurationConfig, write_curation
from transferlab.curation.report import inspect
from transferlab.data.sources import SourceConfig, SourceStats, TextDocument
from transferlab.file_digests import files_fingerprint

FORMAT_VERSION = 1


@SOURCES.register("curated")
class CuratedSourceConfig(SourceConfig):
    """The documents of ``source`` that ``curation`` keeps, in their original order. The domain
    name is ``label``, else the inner source's name."""

    name: Literal["curated"] = "curated"
    source: SourceField  # the source read (any source; a name alone means its defaults)
    curation: CurationConfig = Field(default_factory=CurationConfig)  # what to remove from it

    @property
    def source_name(self) -> str:
        return self.label or self.source.source_name

    def curated_dir(self) -> Path:
        """The cached curation output (``documents.jsonl.gz``, ``curation_stats.json``, score
        files), curated first if it is not there yet."""
        key = content_key(self.source.to_dict(), self.curation.to_dict(), FORMAT_VERSION)
        if files := self.input_files():  # what the files hold; keys of other sources stay
            key = content_key(key, files_fingerprint(files))
        out = cache_root() / "curation" / "sources" / key
        # One process curates a key at a time; the others wait and reuse its output.
        return cached_dir(out, lambda tmp: _curate_into(self, tmp))

    def input_files(self) -> list[Path]:
        return self.source.input_files()

    def provenance(self) -> dict[str, Any]:
        """The curation folder (for ``transferlab data inspect``) and its document counts."""
        out = self.curated_dir()
        report = inspect(out)
        return {
            "curation": {
                "dir": str(out),
                "input_docs": report.input.documents,
                "kept_docs": report.output.documents,
            }
        }

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        path = self.curated_dir() / DOCUMENTS_FILE
        return self._renamed(read_documents(path))

    def _renamed(self, documents: Iterator[TextDocument]) -> Iterator[TextDocument]:
        for doc in documents:
            yield doc if doc.source == self.source_name else replace(doc, source=self.source_name)


def _curate_into(source: CuratedSourceConfig, out: Path) -> None:
    write_curation(source.curation, source.source.iter_documents(), out)
