"""The data stage of a run: tokenizer plus tokenized train/val shards.

From a world, the stage output is content-addressed: it lives in
``cache_root()/data/<key>``, where the key hashes everything that determines it (world config,
tokenizer config, validation fraction, format version), and is built atomically, so runs that
share a world and tokenizer share one copy and an interrupted build is never reused. Layout::

    <key>/tokenizer.json   Hugging Face tokenizer
    <key>/train/           datatrove layout (see ``shards``)
    <key>/val/             same; absent when val_fraction is 0
    <key>/info.json        token and document counts, vocab size, dtype, how validation was chosen
    <key>/train_digests.npy  digests of the training texts (``digests``; not part of the key)
    <key>/COMPLETE

Validation never shares a text with training. A world that makes fresh entities (bios: people no
corpus document or QA item mentions) gets its validation split from them, and the whole corpus
trains: at least one full validation batch of the trainer (``validation_floor``) and at least
``val_fraction`` of the training tokens. Any other world loses whole ``document_groups()`` (and
every group sharing an identical text with them) to validation; real-text sources lose distinct
texts (see ``mixture``). A validation text appears once, since a second copy in the same window
would be predicted by copying.

``data.tokenizer_file`` without ``data.path`` reads the corpus with that tokenizer instead of
training one (how a continued-pretraining stage keeps its parent's token ids): the key then holds
the file's bytes, never its path, in place of the tokenizer section. Words a word-level vocabulary
does not know become ``<unk>``; ``info.json`` counts them (``train_unknown_tokens``, and
``validation.unknown_tokens``) and loading warns when they exceed ``UNKNOWN_WARN_RATE`` of the
training tokens. Byte-level BPE has no unknown tokens.

Alternatively ``data.path`` names an existing tokenized folder (for instance written by
datatrove's ``DocumentTokenizer``) and ``data.tokenizer_file`` its tokenizer; it is used in place.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from transferlab.artifacts import cache_root, cached_dir, content_key
from transferlab.config import ConfigError
from transferlab.config.schemas import RunConfig
from transferlab.data.digests import TRAIN_DIGESTS_FILE, TextDigests
from transferlab.data.mixture import build_from_sources
from transferlab.data.mixture_warnings import warn_data
from transferlab.data.shards import TOKEN_DTYPES, TokenizedFolder, token_size_for, write_tokenized
from transferlab.data.tokenizer import UNK_TOKEN, SpecialTokenIds, TextTokenizer, write_tokenizer
from transferlab.file_digests import file_sha256, sources_fingerprint

if TYPE_CHECKING:  # data does not depend on worlds; a config builds the world
    from transferlab.worlds import World

# 2: the tokenizer also sees the world's task texts; 3: curation provenance in info.json;
# 4: validation shares no text with training (held-out entities or whole groups), in info.json
FORMAT_VERSION = 4
VAL_FLOOR_CAP = 1 << 22  # the most tokens a full validation batch may ask of held-out entities
ENCODE_CHUNK = 2048  # documents per encode_batch call: parallel in Rust, bounded in memory
SPLIT_SALT = 0x5B1D  # keeps the split's random stream apart from the world's own use of its seed
UNKNOWN_WARN_RATE = 0.01  # above this share of <unk> training tokens, loading the data warns
COUNT_CHUNK = 1 << 24  # tokens read at a time when counting unknown ones


class UnknownTokensWarning(UserWarning):
    """Many training tokens are ``<unk>``: the word-level vocabulary misses words of the corpus."""


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


def validation_domains(data: PreparedData) -> dict[str, range]:
    """The validation documents of each data domain, as ranges of the val split's documents: a
    real-text source each (in source order), else one domain (named by the world, or ``data``
    for ``data.path``); empty without a validation split."""
    folder = data.val_folder()
    if folder is None:
        return {}
    info_path = data.root / "info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}  # data.path: none
    if "sources" not in info:
        return {info.get("world", {}).get("name", "data"): range(folder.n_docs)}
    counts = info["validation"].get("domains")
    if counts is None:
        raise ValueError(
            f"data stage {data.root} was built before it recorded each domain's validation "
            "documents; delete that folder and the next run rebuilds it"
        )
    ends = np.cumsum([0] + [domain["docs"] for domain in counts])
    return {
        domain["name"]: range(int(start), int(stop))
        for domain, start, stop in zip(counts, ends[:-1], ends[1:], strict=True)
    }


def prepare_data(cfg: RunConfig) -> PreparedData:
    """Tokenizer and train/val shards for ``cfg``: built from the world (cached), or
    ``cfg.data.path`` used as it is."""
    if cfg.data.path is not None:
        return _external(cfg)
    key = data_key(cfg)
    root = cached_dir(data_dir(cfg), lambda tmp: _build(cfg, tmp, key), verify=_open_cached)
    data = _cached(root, key)
    info = json.loads((root / "info.json").read_text())
    _warn_unknown(cfg, info)
    warn_data(info, cfg.data.warnings)
    return data


def _open_cached(root: Path) -> None:
    """Open a cached data stage's shards, which checks them against their recorded checksums
    (a corrupt stage is then rebuilt)."""
    data = _cached(root, root.name)
    data.train_folder()
    data.val_folder()


def _cached(root: Path, key: str) -> PreparedData:
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
    return keyed_data_dir(data_key(cfg))


def keyed_data_dir(key: str) -> Path:
    """The data stage of key ``key`` (a run's ``run_info.json`` records its ``data_key``)."""
    return cache_root() / "data" / key


def data_key(cfg: RunConfig) -> str:
    """Content key of the data built from ``cfg``'s sources (their configs and the bytes of
    their local files) and mixture, or else its world (what ``prepare_data`` caches under)."""
    if cfg.data.sources:
        corpus = {"sources": [s.to_dict() for s in cfg.data.sources], "mixture": cfg.data.mixture}
        # Keyed only when they apply, so stages built before either existed keep their keys.
        if cfg.data.left_out():
            corpus["left_out"] = cfg.data.left_out()
        if cfg.data.tokenizer_scope != "variant":
            corpus["tokenizer_scope"] = cfg.data.tokenizer_scope
        # What local files hold, not only their paths: an edited corpus is a new stage. Sources
        # on no user files (the stdlib, a hub dataset) have none and keep their keys.
        if files := sources_fingerprint(cfg.data.sources):
            corpus["files"] = files
        return content_key(corpus, tokenizer_identity(cfg), cfg.data.val_fraction, FORMAT_VERSION)
    # A world's held-out validation grows with the trainer's validation batch, so that is keyed.
    return content_key(
        cfg.world.to_dict(),
        tokenizer_identity(cfg),
        cfg.data.val_fraction,
        validation_floor(cfg),
        FORMAT_VERSION,
    )


def tokenizer_identity(cfg: RunConfig) -> dict[str, Any]:
    """What determines the tokenizer of ``cfg``'s data: its tokenizer section, or the bytes of
    the ``data.tokenizer_file`` it reads (not the path, so one tokenizer anywhere is one key)."""
    if cfg.data.tokenizer_file is None:
        return cfg.tokenizer.to_dict()
    path = Path(cfg.data.tokenizer_file)
    if not path.is_file():
        raise ConfigError(
            f"data.tokenizer_file: {path} does not exist; give the tokenizer.json to read the "
            "corpus with (a run directory holds one), or drop the field to train a tokenizer"
        )
    return {"sha256": file_sha256(path)}


def validation_floor(cfg: RunConfig) -> int:
    """Tokens of one full validation batch of the trainer: ``eval_batches * batch_size`` windows
    of ``seq_len + 1`` tokens as the trainer cuts them (consecutive windows share their boundary
    token), capped at ``VAL_FLOOR_CAP``; 0 when the run has no validation."""
    t = cfg.trainer
    if cfg.data.val_fraction == 0 or t.eval_batches == 0:
        return 0
    return min(t.eval_batches * t.batch_size * cfg.data.seq_len + 1, VAL_FLOOR_CAP)


def split_groups(
    groups: Sequence[Hashable], texts: Sequence[str], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, val) documents. A seeded shuffle picks ``val_fraction`` of the groups
    (at least one, never all) for validation; groups sharing an identical text count as one, so
    no text is on both sides, and validation keeps one copy of each text. Both come back in
    corpus order, so train keeps the world's interleaving."""
    if len(groups) != len(texts):
        raise ValueError(f"{len(groups)} group labels for {len(texts)} documents; give one each")
    merged = _merged_groups(groups, texts)
    n_groups = int(merged.max()) + 1 if len(merged) else 0
    n_val = max(1, round(val_fraction * n_groups)) if val_fraction > 0 else 0
    if n_groups - n_val < 1:
        raise ValueError(
            f"the world has {n_groups} document groups; data.val_fraction={val_fraction} leaves "
            "none to train on; use a bigger world or a smaller val_fraction"
        )
    order = np.random.default_rng([seed, SPLIT_SALT]).permutation(n_groups)
    is_val = np.isin(merged, order[:n_val])
    first_copy = {texts[i]: i for i in reversed(np.flatnonzero(is_val).tolist())}
    return np.flatnonzero(~is_val), np.sort(np.fromiter(first_copy.values(), dtype=np.int64))


def _merged_groups(groups: Sequence[Hashable], texts: Sequence[str]) -> np.ndarray:
    """Per document, the index (in order of first appearance) of its group after merging every
    two groups that hold an identical text (union-find over the group labels)."""
    parent: dict[Hashable, Hashable] = {}

    def root(group: Hashable) -> Hashable:
        while parent.setdefault(group, group) != group:
            group = parent[group]
        return group

    group_of_text: dict[str, Hashable] = {}
    for group, text in zip(groups, texts, strict=True):
        a, b = root(group), root(group_of_text.setdefault(text, group))
        if a != b:
            parent[a] = b
    index: dict[Hashable, int] = {}
    return np.asarray([index.setdefault(root(g), len(index)) for g in groups], dtype=np.int64)


def _build(cfg: RunConfig, out: Path, key: str) -> None:
    name = f"transferlab-{key}"
    if cfg.data.sources:
        corpus = {"sources": [s.to_dict() for s in cfg.data.sources]}
        corpus |= build_from_sources(cfg, out, name)
    else:
        corpus = {"world": cfg.world.to_dict()} | _build_from_world(cfg, out, name)
    tokenizer = TextTokenizer.from_file(out / "tokenizer.json")
    token_size = token_size_for(tokenizer.vocab_size)
    corpus["validation"] |= _validation_counts(out / "val", tokenizer)
    info: dict[str, Any] = {
        "key": key,
        **corpus,
        "tokenizer": tokenizer_identity(cfg),
        "train_unknown_tokens": _unknown_tokens(out / "train", tokenizer),
        "val_fraction": cfg.data.val_fraction,
        "vocab_size": tokenizer.vocab_size,
        "token_size": token_size,
        "dtype": TOKEN_DTYPES[token_size].name,
        "format_version": FORMAT_VERSION,
        **{split: _counts(out / split) for split in ("train", "val")},
    }
    (out / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True))


def _build_from_world(cfg: RunConfig, out: Path, name: str) -> dict[str, Any]:
    """Write the tokenizer and both splits; return how validation was chosen."""
    world = cfg.world.build()
    docs = world.documents()
    tokenizer = write_tokenizer(
        cfg.tokenizer, cfg.data.tokenizer_file, world.tokenizer_texts, out / "tokenizer.json"
    )
    if cfg.data.val_fraction > 0 and world.validation_documents(0) is not None:
        _write_docs(tokenizer, docs, out / "train", name)
        TextDigests.of_texts(docs).save(out / TRAIN_DIGESTS_FILE)
        train_tokens = TokenizedFolder(out / "train").n_tokens
        target = max(math.ceil(cfg.data.val_fraction * train_tokens), validation_floor(cfg))
        val_docs = _held_out(world, tokenizer, target, train_tokens / len(docs))
        _write_docs(tokenizer, val_docs, out / "val", name)
        return {"validation": {"by": "held-out entities", "groups": len(val_docs)}}
    groups = world.document_groups()
    train_ids, val_ids = split_groups(groups, docs, cfg.data.val_fraction, cfg.world.seed)
    _write_docs(tokenizer, [docs[i] for i in train_ids], out / "train", name)
    TextDigests.of_texts(docs[i] for i in train_ids).save(out / TRAIN_DIGESTS_FILE)
    _write_docs(tokenizer, [docs[i] for i in val_ids], out / "val", name)
    by = "group" if len(set(groups)) < len(groups) else "document"
    return {"validation": {"by": by, "groups": len({groups[i] for i in val_ids})}}


def _held_out(world: World, tokenizer: TextTokenizer, target: int, per_doc: float) -> list[str]:
    """The shortest prefix of the world's validation documents holding ``target`` tokens (all
    of them when the world runs out first). The count is guessed from the corpus's mean
    document length and grown until it suffices."""
    count = math.ceil(target / per_doc * 1.05) + 1
    while True:
        docs = world.validation_documents(count) or []
        ends = np.cumsum([len(ids) + 2 for ids in tokenizer.encode_batch(docs)])  # + bos, eos
        if len(docs) < count or ends[-1] >= target:
            return docs[: int(np.searchsorted(ends, target)) + 1]
        count = math.ceil(count * 1.25)


def _write_docs(tokenizer: TextTokenizer, docs: Sequence[str], out: Path, name: str) -> None:
    if docs:
        write_tokenized(_encoded(tokenizer, docs), out, tokenizer.vocab_size, name)


def _validation_counts(folder: Path, tokenizer: TextTokenizer) -> dict[str, int]:
    """Documents and tokens of the validation split, and how many of its tokens are unknown to
    a word-level vocabulary (words, such as names, that no training text holds)."""
    return _counts(folder) | {"unknown_tokens": _unknown_tokens(folder, tokenizer)}


def _unknown_tokens(folder: Path, tokenizer: TextTokenizer) -> int:
    """How many tokens of ``folder`` are ``<unk>`` (0 for a vocabulary without one, such as
    byte-level BPE), read a chunk at a time."""
    unk = tokenizer.token_to_id(UNK_TOKEN)
    if unk is None or not folder.is_dir():
        return 0
    tokens = TokenizedFolder(folder)
    return sum(
        int(
            np.count_nonzero(tokens.tokens(start, min(start + COUNT_CHUNK, tokens.n_tokens)) == unk)
        )
        for start in range(0, tokens.n_tokens, COUNT_CHUNK)
    )


def _warn_unknown(cfg: RunConfig, info: dict[str, Any]) -> None:
    """One line when more than ``UNKNOWN_WARN_RATE`` of the training tokens are ``<unk>``,
    naming what to change: where the tokenizer comes from when it is read from a file."""
    unknown, total = info.get("train_unknown_tokens", 0), info["train"]["tokens"]
    if not total or unknown / total <= UNKNOWN_WARN_RATE:
        return
    fix = (
        "train the tokenizer that data.tokenizer_file holds (for a run with init: the first "
        "stage's) with tokenizer.kind=bpe, which has no unknown tokens"
        if cfg.data.tokenizer_file is not None
        else "set tokenizer.kind=bpe (no unknown tokens) or raise tokenizer.vocab_size"
    )
    warnings.warn(
        f"data {info['key']}: {unknown / total:.1%} of the training tokens ({unknown:,} of "
        f"{total:,}) are <unk>, words the word-level vocabulary does not know; {fix}",
        UnknownTokensWarning,
        stacklevel=3,
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
        file_sha256(tokenizer_path),
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
