"""Which texts a data stage trained on, as digests, so an evaluation can leave out held-out
documents that the model has in fact seen.

Texts are compared after whitespace normalization (runs of whitespace become one space, leading
and trailing whitespace goes: ``" ".join(text.split())``), so a copy that differs only in line
breaks or indentation still counts as the same text; anything else (case, punctuation, one word)
makes it another text. A digest is the first 8 bytes of the BLAKE2b hash of the normalized text's
UTF-8 bytes, as an unsigned 64-bit integer: a stage of a million documents holds 8 MB of them and
two distinct texts collide with odds of about 1 in 10^7.

The data stage writes the distinct digests of its training documents, sorted, to
``train_digests.npy`` (``TRAIN_DIGESTS_FILE``), next to ``info.json``; it is a side file and
does not change the stage's key. ``training_digests`` reads it, or for a stage built before the
file existed computes the digests of every document of the config's corpus (its sources or its
world), validation documents included: a superset, so no seen text is missed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferlab.config.schemas import RunConfig

TRAIN_DIGESTS_FILE = "train_digests.npy"


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def text_digest(text: str) -> int:
    """The digest of ``text`` after whitespace normalization."""
    raw = hashlib.blake2b(normalize_whitespace(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(raw, "little")


@dataclass(frozen=True)
class TextDigests:
    """A set of text digests: a sorted array of distinct unsigned 64-bit integers."""

    values: np.ndarray

    @classmethod
    def of(cls, digests: Iterable[int]) -> TextDigests:
        return cls(np.unique(np.fromiter(digests, dtype=np.uint64)))

    @classmethod
    def of_texts(cls, texts: Iterable[str]) -> TextDigests:
        return cls.of(text_digest(text) for text in texts)

    @classmethod
    def load(cls, path: Path) -> TextDigests:
        return cls(np.load(path, allow_pickle=False))

    def save(self, path: Path) -> None:
        np.save(path, self.values, allow_pickle=False)

    def union(self, other: TextDigests) -> TextDigests:
        return TextDigests(np.union1d(self.values, other.values))

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, text: str) -> bool:
        digest = np.uint64(text_digest(text))
        i = int(np.searchsorted(self.values, digest))
        return i < len(self.values) and self.values[i] == digest


def training_digests(root: Path, cfg: RunConfig) -> TextDigests:
    """The digests of the training texts of the data stage ``cfg`` built in ``root``: its
    ``train_digests.npy``, else (a stage built before it was written, or removed since) those of
    every document of ``cfg``'s sources or world. ``cfg.data.path`` has no texts to read."""
    path = Path(root) / TRAIN_DIGESTS_FILE
    if path.is_file():
        return TextDigests.load(path)
    if cfg.data.path is not None:
        raise ValueError(
            f"data.path {cfg.data.path} is a tokenized folder with no texts to compare with"
        )
    if cfg.data.sources:
        return TextDigests.of_texts(
            doc.text for source in cfg.data.sources for doc in source.iter_documents()
        )
    return TextDigests.of_texts(cfg.world.build().documents())
