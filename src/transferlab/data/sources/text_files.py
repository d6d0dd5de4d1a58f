"""Local text files: one document per file, or per paragraph (lines between blank lines)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from transferlab.config.registry import SOURCES
from transferlab.data.sources.base import SourceConfig, SourceStats, TextDocument
from transferlab.data.sources.files import SourceFile, named_files, read_text, resolve_files

SUFFIXES = (".txt",)


@SOURCES.register("text_files")
class TextFilesConfig(SourceConfig):
    """``path``: a .txt file, a directory (every .txt file below it) or a glob pattern.

    ``split: file`` gives one document per file (id: the relative path); ``split: paragraph``
    one per paragraph (id: ``<relative path>#<index>``, 0-based within the file). A file is
    read whole, so memory holds one file at a time.
    """

    name: Literal["text_files"] = "text_files"
    path: str
    split: Literal["file", "paragraph"] = "file"  # one document per file or per paragraph

    def input_files(self) -> list[Path]:
        return named_files(self.path, SUFFIXES, self.name)

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        return self._read(resolve_files(self.path, SUFFIXES, self.name), stats)

    def _read(self, files: list[SourceFile], stats: SourceStats) -> Iterator[TextDocument]:
        for file in files:
            text = read_text(file, stats)
            if text is None:
                continue
            if self.split == "file":
                yield TextDocument(file.rel, text, self.source_name, {"path": file.rel})
                continue
            for index, paragraph in enumerate(paragraphs(text)):
                meta = {"path": file.rel, "paragraph": index}
                yield TextDocument(f"{file.rel}#{index}", paragraph, self.source_name, meta)


def paragraphs(text: str) -> Iterator[str]:
    """Runs of non-blank lines, joined by ``\\n``; lines of only whitespace separate them."""
    block: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            block.append(line)
        elif block:
            yield "\n".join(block)
            block = []
    if block:
        yield "\n".join(block)
