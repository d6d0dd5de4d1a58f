"""The data stage of a run: tokenizer plus tokenized train/val shards.

From a world, the stage output is content-addressed: it lives in
``cache_root()/data/<key>``, where the key hashes everything that determines it (world config,
tokenizer config, validation fraction, format version), and is built atomically, so runs that
share a world and tokenizer share one copy and an interrupted build is never reused. Layout::

    <key>/tokenizer.json   Hugging Face tokenizer
    <key>/train/           datatrove layout (see ``shards``)
    <key>/val/             same; absent when val_fraction is 0
    <key>/info.json        token and document counts, vocab size, dtype
    <key>/COMPLETE

Alternatively ``data.path`` names an existing tokenized folder (for instance written by
datatrove's ``DocumentTokenizer``) and ``data.tokenizer_file`` its tokenizer; it is used in place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.artifacts import cache_root, cached_dir, content_key
from transferlab.config.schemas import RunConfig
from transferlab.data.mixture import build_from_sources
from transferlab.data.shards import TOKEN_DTYPES, TokenizedFolder, token_size_for, write_tokenized
from transferlab.data.tokenizer import SpecialTokenIds, TextTokenizer, train_tokenizer

FORMAT_VERSION = (
    3  # 2: the tokenizer also sees the world's task texts; 3: curation provenance in info.json
)
ENCODE_CHUNK = 2048  # documents per encode_batch call: parallel in Rust, bounded in memory
SPLIT_SALT = 0x5B1D  # keeps the split's random stream apart from the world's own use of its seed


@dataclass(frozen=True)
class PreparedData:
    """Where a run's data lives. ``val_dir`` is None when there is no validation split;
    ``token_size`` (2 or 4 bytes) is what the shards were written with."""

    root: Path
    tokenizer_path: Path
    train_dir: Path
    val_dir: Path | None
    vocab_size: int
    key: str
    n_train_tokens: int
    n_val_tokens: int
    special: SpecialTokenIds
    token_size: int

    def tokenizer(self) -> TextTokenizer:
        return TextTokenizer.from_file(self.tokenizer_path)

    def train_folder(self) -> TokenizedFolder:
        return TokenizedFolder(self.train_dir, token_size=self.token_size)

    def val_folder(self) -> TokenizedFolder | None:
        if self.val_dir is None:
            return None
        return TokenizedFolder(self.val_dir, token_size=self.token_size)


def prepare_data(cfg: RunConfig) -> PreparedData:
    """Tokenizer and train/val shards for ``cfg``: built from the world (cached), or
    ``cfg.data.path`` used as it is."""
    if cfg.data.path is not None:
        return _external(cfg)
    key = data_key(cfg)
    root = cached_dir(data_dir(cfg), lambda tmp: _build(cfg, tmp, key))
    info = json.loads((root / "info.json").read_text())
    tokenizer = TextTokenizer.from_file(root / "tokenizer.json")
    return PreparedData(
        root=root,
        tokenizer_path=root / "tokenizer.json",
        train_dir=root / "train",
        val_dir=root / "val" if info["val"]["docs"] else None,
        vocab_size=tokenizer.vocab_size,
        key=key,
        n_train_tokens=info["train"]["tokens"],
        n_val_tokens=info["val"]["tokens"],
        special=tokenizer.special,
        token_size=info["token_size"],
    )


def data_dir(cfg: RunConfig) -> Path:
    """Where ``prepare_data`` caches ``cfg``'s data stage (complete once built)."""
    return cache_root() / "data" / data_key(cfg)


def data_key(cfg: RunConfig) -> str:
    """Content key of the data built from ``cfg``'s sources and mixture, or else its world
    (what ``prepare_data`` caches under)."""
    corpus = (
        {"sources": [s.to_dict() for s in cfg.data.sources], "mixture": cfg.data.mixture}
        if cfg.data.sources
        else cfg.world.to_dict()
    )
    return content_key(corpus, cfg.tokenizer.to_dict(), cfg.data.val_fraction, FORMAT_VERSION)


def split_documents(n_docs: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, val) documents: a seeded shuffle picks the val ones; both come back in
    corpus order, so train keeps the world's interleaving of people."""
    n_val = max(1, round(val_fraction * n_docs)) if val_fraction > 0 else 0
    if n_docs - n_val < 1:
        raise ValueError(
            f"the world has {n_docs} documents; data.val_fraction={val_fraction} leaves none to "
            "train on; use a bigger world or a smaller val_fraction"
        )
    order = np.random.default_rng([seed, SPLIT_SALT]).permutation(n_docs)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _build(cfg: RunConfig, out: Path, key: str) -> None:
    name = f"transferlab-{key}"
    if cfg.data.sources:
        corpus = {"sources": [s.to_dict() for s in cfg.data.sources]}
        corpus |= build_from_sources(cfg, out, name)
    else:
        corpus = {"world": cfg.world.to_dict()}
        _build_from_world(cfg, out, name)
    tokenizer = TextTokenizer.from_file(out / "tokenizer.json")
    token_size = token_size_for(tokenizer.vocab_size)
    info: dict[str, Any] = {
        "key": key,
        **corpus,
        "tokenizer": cfg.tokenizer.to_dict(),
        "val_fraction": cfg.data.val_fraction,
        "vocab_size": tokenizer.vocab_size,
        "token_size": token_size,
        "dtype": TOKEN_DTYPES[token_size].name,
        "format_version": FORMAT_VERSION,
        **{split: _counts(out / split) for split in ("train", "val")},
    }
    (out / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True))


def _build_from_world(cfg: RunConfig, out: Path, name: str) -> None:
    world = cfg.world.build()
    docs = world.documents()
    tokenizer = train_tokenizer(cfg.tokenizer, world.tokenizer_texts())
    tokenizer.save(out / "tokenizer.json")
    train_ids, val_ids = split_documents(len(docs), cfg.data.val_fraction, cfg.world.seed)
    for split, ids in (("train", train_ids), ("val", val_ids)):
        folder_docs = [docs[i] for i in ids]
        if folder_docs:
            write_tokenized(
                _encoded(tokenizer, folder_docs), out / split, tokenizer.vocab_size, name
            )


def _encoded(tokenizer: TextTokenizer, docs: Sequence[str]) -> Iterator[list[int]]:
    """``[bos] + ids + [eos]`` per document, encoded a chunk at a time."""
    bos, eos = tokenizer.special.bos, tokenizer.special.eos
    for start in range(0, len(docs), ENCODE_CHUNK):
        for ids in tokenizer.encode_batch(docs[start : start + ENCODE_CHUNK]):
            yield [bos, *ids, eos]


def _counts(folder: Path) -> dict[str, int]:
    if not folder.is_dir():
        return {"docs": 0, "tokens": 0}
    tokens = TokenizedFolder(folder)
    return {"docs": tokens.n_docs, "tokens": tokens.n_tokens}


def _external(cfg: RunConfig) -> PreparedData:
    root = Path(cfg.data.path)
    tokenizer_path = Path(cfg.data.tokenizer_file)
    tokenizer = TextTokenizer.from_file(tokenizer_path)
    token_size = token_size_for(tokenizer.vocab_size)
    train = TokenizedFolder(root, token_size=token_size)
    val_dir = root / "val" if (root / "val").is_dir() else None
    n_val = TokenizedFolder(val_dir, token_size=token_size).n_tokens if val_dir else 0
    key = content_key(
        str(root.resolve()),
        hashlib.sha256(tokenizer_path.read_bytes()).hexdigest(),
        [[s.path.name, s.n_tokens] for s in train.shards],
        FORMAT_VERSION,
    )
    return PreparedData(
        root=root,
        tokenizer_path=tokenizer_path,
        train_dir=root,
        val_dir=val_dir,
        vocab_size=tokenizer.vocab_size,
        key=key,
        n_train_tokens=train.n_tokens,
        n_val_tokens=n_val,
        special=tokenizer.special,
        token_size=token_size,
    )
