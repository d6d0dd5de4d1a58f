"""User-given corpora (lists of sources) that curation components are trained on: the reference
corpus of the perplexity model and the examples of the quality classifier."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from transferlab.curation.documents import update_digest
from transferlab.data.sources import SOURCES, SourceConfig, iter_documents

# A source given as a mapping with ``name`` (``{name: jsonl, path: ...}``).
SourceField = SOURCES.type(SourceConfig)
SourceList = Annotated[list[SourceField], Field(min_length=1)]


def corpus_digest(sources: Sequence[SourceConfig]) -> str:
    """A hash of every document of ``sources``: what a component trained on them depends on,
    beyond their configs (the files behind a path can change)."""
    hasher = hashlib.sha256()
    for doc in iter_documents(sources):
        update_digest(hasher, doc)
    return hasher.hexdigest()
