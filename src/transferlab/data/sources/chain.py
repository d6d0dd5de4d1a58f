"""Several sources read one after the other, as one stream of documents."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from transferlab.data.sources.base import SourceConfig, SourceError, SourceStats, TextDocument


def iter_documents(
    sources: Sequence[SourceConfig], stats: dict[str, SourceStats] | None = None
) -> Iterator[TextDocument]:
    """The documents of ``sources`` in order, each tagged with its source's name (its
    ``source`` field), which later tags its domain. Source names must be distinct, so that
    (source, id) names a document uniquely; ``stats``, when given, receives each source's
    ``SourceStats`` under its name. Every source checks its own setup (paths, packages) here,
    before the first document."""
    names = [source.source_name for source in sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SourceError(
            f"source name(s) {', '.join(map(repr, repeated))} used more than once; give each "
            "source a distinct label"
        )
    stats = {} if stats is None else stats
    streams = []
    for source in sources:
        stats[source.source_name] = SourceStats()
        streams.append(source.iter_documents(stats[source.source_name]))
    return itertools.chain.from_iterable(streams)


def iter_texts(sources: Sequence[SourceConfig]) -> Iterator[str]:
    """The texts of ``sources``, streamed in order (``iter_documents``' texts)."""
    for doc in iter_documents(sources):
        yield doc.text
