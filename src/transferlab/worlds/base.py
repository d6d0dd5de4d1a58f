"""The interface every synthetic world implements, and writing a world to disk atomically."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from transferlab.artifacts import atomic_dir
from transferlab.config.schemas import WorldConfig

WORLD_KIND = "world"  # what the COMPLETE marker of a built world names


class World(ABC):
    """A seeded generator of a pretraining corpus together with the ground truth behind it."""

    @abstractmethod
    def documents(self) -> list[str]:
        """The pretraining corpus, one text per document, in corpus order."""

    def document_groups(self) -> list[int]:
        """A group label per document of ``documents()``: documents that share text or facts
        (copies, rephrasings of one entity) share a label, so that a validation split made of
        whole groups shares nothing with training. Default: every document its own group."""
        return list(range(len(self.documents())))

    def validation_documents(self, count: int) -> list[str] | None:
        """Documents of ``count`` fresh entities that no ``documents()`` text or task mentions,
        drawn like the corpus (the first ``k`` the same for any ``count >= k``, fewer when the
        world runs out), or None when the world cannot make them and validation must be split
        off the corpus by ``document_groups()``."""
        return None

    def tokenizer_texts(self) -> list[str]:
        """Texts the tokenizer is trained on: the corpus plus any downstream task text, so that
        task prompts tokenize without unknown words even with a word-level vocabulary."""
        return self.documents()

    def entities(self) -> list[str]:
        """The names of the entities the corpus mentions (people, places, organisations...),
        for objectives that keep entity names whole (``objectives.context``). Default: none."""
        return []

    @abstractmethod
    def write(self, out_dir: Path) -> None:
        """Write the corpus, the tasks and the ground truth as files into ``out_dir``."""


def build_world(cfg: WorldConfig, out_dir: Path) -> Path:
    """Build the world of ``cfg`` and write it to ``out_dir`` atomically; return ``out_dir``.

    ``out_dir`` appears only once every file is written (and carries the COMPLETE marker), so
    an interrupted build never leaves a directory that looks finished.
    """
    world = cfg.build()
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, kind=WORLD_KIND) as tmp:
        world.write(tmp)
    return out_dir
