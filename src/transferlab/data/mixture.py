"""The data stage for real text: tokenize each source (a domain) into its own shards, split off
validation documents, then sample the training set by domain weights and a token budget.

Validation takes ``val_fraction`` of each domain's distinct texts, one copy each, and a text it
takes leaves training in every domain; it is split off before sampling, so up-sampling repeats
training documents only and no text is on both sides. The val split holds the domains one after
the other (``info.json``'s ``validation.domains`` counts each one's documents), so per-domain
statistics can read a domain's held-out text alone.

Up-sampling repeats a domain over several epochs (each a fresh seeded permutation of its
documents), down-sampling takes a seeded subset; the sampled documents of all domains are
interleaved by a seeded shuffle. Only document indices (and one 8-byte text digest per
document, for ``train_digests.npy``: see ``digests``) are held in memory; text and tokens stream
from the sources and the per-domain shards.

A domain of weight 0 (or one the weights do not name) takes no part: it is not read, tokenized,
validated on or, unless ``data.tokenizer_scope`` is ``shared``, in the tokenizer's texts;
``info.json`` lists it under ``left_out``, and records the tokenizer's scope, the domains that
trained it and its file's SHA-256 (equal across variants that share it).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from transferlab.config.schemas import MixtureConfig, RunConfig
from transferlab.data.digests import TRAIN_DIGESTS_FILE, TextDigests, text_digest
from transferlab.data.shards import TokenizedFolder, write_tokenized
from transferlab.data.sources import SourceConfig, iter_texts
from transferlab.data.tokenizer import TextTokenizer, write_tokenizer
from transferlab.data.tokenizer_scope import shared_tokenizer_file, tokenizer_sources
from transferlab.file_digests import file_sha256

ENCODE_CHUNK = 1024


@dataclass(frozen=True)
class DomainPlan:
    """What the mixture takes from one domain (counts of its training split)."""

    name: str
    docs: int
    tokens: int
    target_tokens: int
    sampled_docs: int
    sampled_tokens: int

    @property
    def epochs(self) -> float:
        return self.sampled_tokens / self.tokens if self.tokens else 0.0


def build_from_sources(cfg: RunConfig, out: Path, name: str) -> dict[str, object]:
    """Write ``tokenizer.json``, ``train/`` and ``val/`` into ``out``; return info for info.json."""
    left_out = cfg.data.left_out()
    sources = [s for s in cfg.data.sources if s.source_name not in left_out]
    by_name = {s.source_name: s for s in sources}
    tokenizer = _write_tokenizer(cfg, out / "tokenizer.json")
    domains, digests = {}, {}
    for s in sources:
        domains[s.source_name], digests[s.source_name] = _tokenize_domain(
            s, tokenizer, out / "domains" / s.source_name
        )
    rng = np.random.default_rng([cfg.data.mixture.seed if cfg.data.mixture else 0, 0x3A7])
    splits = split_distinct_texts(domains, cfg.data.val_fraction, rng)
    val = [(d, int(i)) for d, (_, val_ids) in splits.items() for i in val_ids]
    if val:
        write_tokenized(_read(domains, val), out / "val", tokenizer.vocab_size, name)
    plans, picks = sample_mixture(
        cfg.data.mixture or MixtureConfig(),
        {d: (domains[d], train_ids) for d, (train_ids, _) in splits.items()},
        rng,
    )
    write_tokenized(_read(domains, picks), out / "train", tokenizer.vocab_size, name)
    TextDigests.of(digests[d][i] for d, i in picks).save(out / TRAIN_DIGESTS_FILE)
    return {
        "domains": [
            asdict(p) | {"epochs": round(p.epochs, 4)} | by_name[p.name].provenance() for p in plans
        ],
        # The val split holds each domain's documents together, in this order.
        "validation": {
            "by": "document",
            "groups": len(val),
            "domains": [{"name": d, "docs": len(ids)} for d, (_, ids) in splits.items()],
        },
        "left_out": [{"name": d, "reason": "mixture weight 0"} for d in left_out],
        "tokenizer_scope": cfg.data.tokenizer_scope,
        # None: read from data.tokenizer_file, whichever texts trained it.
        "tokenizer_domains": None
        if cfg.data.tokenizer_file
        else [s.source_name for s in tokenizer_sources(cfg)],
        "tokenizer_sha256": file_sha256(out / "tokenizer.json"),
    }


def _write_tokenizer(cfg: RunConfig, path: Path) -> TextTokenizer:
    """The corpus's tokenizer, written to ``path``: read from ``data.tokenizer_file`` (a child
    stage's parent's, whatever the scope), copied from the one trained on every listed domain
    (``tokenizer_scope: shared``), or trained on the domains the run mixes in."""
    if cfg.data.tokenizer_scope == "shared" and cfg.data.tokenizer_file is None:
        return write_tokenizer(cfg.tokenizer, str(shared_tokenizer_file(cfg)), list, path)
    sources = tokenizer_sources(cfg)
    return write_tokenizer(
        cfg.tokenizer, cfg.data.tokenizer_file, lambda: iter_texts(sources), path
    )


def sample_mixture(
    mixture: MixtureConfig,
    domains: dict[str, tuple[TokenizedFolder, np.ndarray]],
    rng: np.random.Generator,
) -> tuple[list[DomainPlan], list[tuple[str, int]]]:
    """(per-domain plan, interleaved (domain, document) picks) for the training split."""
    lengths = {d: np.diff(folder.doc_ends, prepend=0)[ids] for d, (folder, ids) in domains.items()}
    natural = {d: int(lens.sum()) for d, lens in lengths.items()}
    budget = mixture.tokens or sum(natural.values())
    weights = mixture.weights or {d: float(t) for d, t in natural.items()}
    total_weight = sum(weights.get(d, 0.0) for d in domains)
    plans, picks = [], []
    for d, (_, ids) in domains.items():
        target = round(budget * weights.get(d, 0.0) / total_weight)
        chosen = _draw(ids, lengths[d], target, rng)
        sampled = int(lengths[d][np.searchsorted(ids, chosen)].sum()) if len(chosen) else 0
        plans.append(DomainPlan(d, len(ids), natural[d], target, len(chosen), sampled))
        picks += [(d, int(i)) for i in chosen]
    order = rng.permutation(len(picks))
    return plans, [picks[i] for i in order]


def _draw(
    ids: np.ndarray, lengths: np.ndarray, target: int, rng: np.random.Generator
) -> np.ndarray:
    """Documents (epoch after epoch, each a fresh permutation) until ``target`` tokens."""
    if target <= 0 or len(ids) == 0:
        return np.array([], dtype=np.int64)
    chosen, total = [], 0
    while total < target:
        for j in rng.permutation(len(ids)):
            chosen.append(ids[j])
            total += int(lengths[j])
            if total >= target:
                break
    return np.asarray(chosen, dtype=np.int64)


def split_distinct_texts(
    domains: dict[str, TokenizedFolder], val_fraction: float, rng: np.random.Generator
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per domain, (train, val) document indices in corpus order: a seeded shuffle of the
    domain's distinct texts picks ``val_fraction`` of them (at least one, never all) for
    validation, which keeps the first copy of each; every copy of a picked text, in any domain,
    leaves training. Texts are compared by a digest of their tokens (encoding is exact)."""
    digests = {
        d: [_digest(folder.document(i)) for i in range(folder.n_docs)]
        for d, folder in domains.items()
    }
    picked = {h for hashes in digests.values() for h in _pick(hashes, val_fraction, rng)}
    splits, in_val = {}, set()
    for d, hashes in digests.items():
        train, val = [], []
        for i, h in enumerate(hashes):
            if h not in picked:
                train.append(i)
            elif h not in in_val:
                in_val.add(h)
                val.append(i)
        splits[d] = (np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64))
    return splits


def _pick(hashes: list[bytes], val_fraction: float, rng: np.random.Generator) -> list[bytes]:
    """A seeded ``val_fraction`` of the distinct ``hashes``, at least one and never all."""
    distinct = list(dict.fromkeys(hashes))
    if val_fraction == 0:
        return []
    n_val = min(len(distinct) - 1, max(1, round(val_fraction * len(distinct))))
    return [distinct[i] for i in rng.permutation(len(distinct))[:n_val]]


def _digest(tokens: np.ndarray) -> bytes:
    return hashlib.blake2b(tokens.tobytes(), digest_size=16).digest()


def _tokenize_domain(
    source: SourceConfig, tokenizer: TextTokenizer, out: Path
) -> tuple[TokenizedFolder, array]:
    """The source's documents tokenized into ``out``, and the text digest of each (in order)."""
    bos, eos = tokenizer.special.bos, tokenizer.special.eos
    digests = array("Q")  # 8 bytes a document

    def encoded() -> Iterator[list[int]]:
        chunk: list[str] = []
        for doc in source.iter_documents():
            chunk.append(doc.text)
            digests.append(text_digest(doc.text))
            if len(chunk) == ENCODE_CHUNK:
                yield from ([bos, *ids, eos] for ids in tokenizer.encode_batch(chunk))
                chunk = []
        yield from ([bos, *ids, eos] for ids in tokenizer.encode_batch(chunk))

    write_tokenized(encoded(), out, tokenizer.vocab_size, source.source_name)
    folder = TokenizedFolder(out)
    if folder.n_docs == 0:
        raise ValueError(f"source {source.source_name!r} yielded no documents; check its path")
    return folder, digests


def _read(
    domains: dict[str, TokenizedFolder], picks: list[tuple[str, int]]
) -> Iterator[np.ndarray]:
    for domain, index in picks:
        yield domains[domain].document(index)
