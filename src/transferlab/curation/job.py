"""A curation job file: which sources to read and how to curate them.

```yaml
sources:
  - {name: python_stdlib, split: function, modules: [json, email]}
  - {name: jsonl, path: data/web/*.jsonl.gz, label: web}
curation:
  filters: [gopher_quality, {name: c4_quality, min_num_sentences: 3}]
  dedup: {exact: true, minhash: {threshold: 0.8}}
```
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from transferlab.config import BaseConfig, ComponentConfig, load_config
from transferlab.curation.pipeline import CurationConfig
from transferlab.data.sources import SOURCES, TextDocument, iter_documents


class CurationJob(BaseConfig):
    """A curation job file (``transferlab data curate JOB``): sources and their curation."""

    # the sources curated together (dedup spans them all), ``{path: ...}`` meaning jsonl
    sources: list[SOURCES.type(ComponentConfig, default="jsonl")] = Field(min_length=1)
    curation: CurationConfig = Field(default_factory=CurationConfig)  # what to remove

    def documents(self) -> Iterator[TextDocument]:
        return iter_documents(self.sources)


def load_job(path: str | Path, overrides: list[str] = ()) -> CurationJob:
    return load_config(CurationJob, path, list(overrides))
