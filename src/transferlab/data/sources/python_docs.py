"""The Python language reference's topics that ship with every interpreter (``pydoc_data``, the
text ``help("assert")`` prints): English technical prose, with some code, present on every
machine without a download. A third real domain beside Python code and synthetic biographies.

``split: topic`` gives one document per topic (79 in CPython 3.11, id the topic name);
``split: paragraph`` one per blank-line paragraph (ids ``TOPIC#N``), short paragraphs joined
with the ones after them until a document holds at least ``min_chars`` characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from transferlab.config.registry import SOURCES
from transferlab.data.sources.base import SourceConfig, SourceStats, TextDocument

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@SOURCES.register("python_docs")
class PythonDocsConfig(SourceConfig):
    name: Literal["python_docs"] = "python_docs"
    split: Literal["topic", "paragraph"] = "paragraph"  # one document per topic or paragraph
    # split: paragraph joins a short paragraph with the next until it holds this many chars
    min_chars: int = Field(default=200, gt=0)

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        from pydoc_data.topics import topics

        return (
            TextDocument(doc_id, text, self.source_name, {"topic": topic})
            for topic in sorted(topics)
            for doc_id, text in self._split(topic, topics[topic])
        )

    def _split(self, topic: str, text: str) -> Iterator[tuple[str, str]]:
        if self.split == "topic":
            yield topic, text
            return
        pending: list[str] = []
        count = 0
        for paragraph in _PARAGRAPH_BREAK.split(text):
            if paragraph.strip():
                pending.append(paragraph)
            if sum(len(p) for p in pending) >= self.min_chars:
                yield f"{topic}#{count}", "\n\n".join(pending)
                pending, count = [], count + 1
        if pending:  # the topic's tail, however short
            yield f"{topic}#{count}", "\n\n".join(pending)
