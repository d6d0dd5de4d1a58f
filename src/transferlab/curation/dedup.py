"""Duplicate removal: exact (a hash of the normalized text) and MinHash near-duplicates.

Both run in this process over a stream, keeping only what deduplication needs: a 16-byte digest
per distinct document, and a MinHash signature per kept document in a ``datasketch`` LSH index.
A duplicate is reported with the earlier kept document it duplicates, so the first of a group is
always the one kept. Everything is deterministic: the signatures' permutations come from a seed
and candidates are checked in the order their documents arrived.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from transferlab.config.base import BaseConfig
from transferlab.data.sources import TextDocument

WHITESPACE = re.compile(r"\s+")
MINHASH_SCHEME = "affine32"  # datasketch's default; named because reusing permutations needs it
# LSH bands chosen to weigh missed pairs (false negatives) 9:1 over spurious candidates: every
# candidate's signature is compared in full anyway, so a spurious one only costs a comparison.
LSH_WEIGHTS = (0.1, 0.9)


class MinHashConfig(BaseConfig):
    """Near-duplicates: documents whose sets of ``ngram``-word shingles have an estimated
    Jaccard similarity of at least ``threshold``, estimated from ``num_perm`` permutations."""

    num_perm: int = Field(default=128, ge=4)  # permutations per signature: more, more exact
    # the least estimated Jaccard similarity to an earlier kept document that makes a duplicate
    threshold: float = Field(default=0.7, gt=0, le=1)
    ngram: int = Field(default=5, ge=1)  # words per shingle
    seed: int = 1  # draws the permutations


class DedupConfig(BaseConfig):
    """``exact``: drop documents whose normalized text repeats an earlier one; ``minhash``: drop
    near-duplicates (None turns it off)."""

    exact: bool = True
    minhash: MinHashConfig | None = Field(default_factory=MinHashConfig)


@dataclass(frozen=True)
class Duplicate:
    """The kept document a duplicate repeats, and their (estimated) Jaccard similarity."""

    source: str
    id: str
    similarity: float


def normalize_text(text: str) -> str:
    """NFKC, lower case, whitespace runs collapsed to one space: what "the same text" means."""
    return WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).digest()


class ExactDeduplicator:
    """Remembers the first document of every normalized text seen."""

    def __init__(self) -> None:
        self._first: dict[bytes, tuple[str, str]] = {}

    def check(self, doc: TextDocument) -> Duplicate | None:
        """The earlier document ``doc`` repeats, or None (then ``doc`` is remembered)."""
        key = text_digest(doc.text)
        first = self._first.get(key)
        if first is not None:
            return Duplicate(first[0], first[1], 1.0)
        self._first[key] = (doc.source, doc.id)
        return None


def word_shingles(text: str, n: int) -> set[str]:
    """The distinct ``n``-word windows of the normalized text; the whole text when shorter."""
    words = normalize_text(text).split(" ")
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class NearDuplicateDetector:
    """MinHash signatures of kept documents in an LSH index; a new document whose signature
    agrees with a kept one's on at least ``threshold`` of the permutations is a duplicate."""

    def __init__(self, cfg: MinHashConfig) -> None:
        from datasketch import MinHash, MinHashLSH

        self.cfg = cfg
        self._minhash = MinHash
        # One set of permutations for every signature (drawing them is the costly part).
        self._permutations = MinHash(num_perm=cfg.num_perm, seed=cfg.seed).permutations
        self._lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, weights=LSH_WEIGHTS)
        self._kept: list[tuple[str, str]] = []
        self._signatures: list[np.ndarray] = []

    def signature(self, text: str) -> object:
        minhash = self._minhash(
            num_perm=self.cfg.num_perm,
            seed=self.cfg.seed,
            permutations=self._permutations,
            scheme=MINHASH_SCHEME,
        )
        minhash.update_batch(
            [s.encode("utf-8") for s in sorted(word_shingles(text, self.cfg.ngram))]
        )
        return minhash

    def check(self, doc: TextDocument) -> Duplicate | None:
        """The earliest kept document ``doc`` nearly repeats, or None (then ``doc`` is kept)."""
        minhash = self.signature(doc.text)
        values = minhash.hashvalues
        # LSH candidates share a band with ``doc``; some are false positives, so check each.
        for index in sorted(self._lsh.query(minhash)):
            similarity = float(np.mean(self._signatures[index] == values))
            if similarity >= self.cfg.threshold:
                return Duplicate(*self._kept[index], similarity)
        self._lsh.insert(len(self._kept), minhash)
        self._kept.append((doc.source, doc.id))
        self._signatures.append(values)
        return None
