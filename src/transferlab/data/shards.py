"""Tokenized documents on disk in the layout datatrove writes, memory-mapped for reading.

Matched against datatrove 0.10 (``pipeline/tokens/tokenizer.py`` ``TokenizedFile``,
``pipeline/tokens/merger.py`` and ``utils/dataset.py`` ``DatatroveFolderDataset``):

- ``<name>.ds``: the token ids of all documents back to back, little-endian, 2 bytes (uint16)
  per token when the vocabulary has at most 65536 ids, else 4 bytes (uint32). No header.
- ``<name>.ds.index``: little-endian uint64, one per document: its end position *in tokens*
  (cumulative within the file; the last one equals the file's token count). No header.
- ``<name>.ds.metadata``: text, no trailing newline: ``"<tokenizer name>|<token size>"``, the
  token count, and the count in SI units (``"1.23 kT"``). Readers use the first line only.
- File names follow the merger: ``000_<name>.ds``, ``001_<name>.ds`` ... (a new file starts once
  the current one holds ``max_tokens_per_file`` tokens; documents are never split), plus a
  ``<name>.ds.metadata`` with the total count and no ``.ds`` beside it.

Datatrove's folder reader takes every ``*.ds`` file in sorted order; so does ``TokenizedFolder``
(top level only, so a ``val/`` subfolder stays separate). Loss masks (``.ds.loss``) are not used.

transferlab adds ``<name>.ds.checksum`` (JSON: the BLAKE2b digests of the ``.ds`` and its
``.index`` as they were written), which datatrove ignores; a folder opened with it is checked once
per process and file version, and a mismatch raises ``CorruptArtifact`` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from transferlab.artifacts import CorruptArtifact

INDEX_DTYPE = np.dtype("<u8")
TOKEN_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}
UINT16_VOCAB = 1 << 16
SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")
CHECKSUM_SUFFIX = ".checksum"
_VERIFIED: set[tuple[str, int, int, int]] = set()  # (path, inode, size, mtime) checked here


def token_size_for(vocab_size: int) -> int:
    """Bytes per token datatrove uses for a vocabulary of ``vocab_size`` ids."""
    return 4 if vocab_size > UINT16_VOCAB else 2


def _si_count(count: int) -> str:
    """``1234 -> "1.23 kT"``: three significant digits and an SI prefix, as datatrove writes."""
    value = float(f"{count:.3g}")  # round first, so 999_600 becomes 1.00 M and not 1000 k
    exponent = math.floor(math.log10(value)) if value else 0
    bucket = min(exponent // 3, len(SI_PREFIXES) - 1)
    digits = max(0, 2 - (exponent - 3 * bucket))
    return f"{value / 1000**bucket:.{digits}f} {SI_PREFIXES[bucket]}T"


def write_metadata(path: Path, tokenizer_name: str, token_size: int, n_tokens: int) -> None:
    path.write_text(f"{tokenizer_name}|{token_size}\n{n_tokens}\n{_si_count(n_tokens)}")


class _ShardWriter:
    """One ``.ds`` file with its index, written as documents stream in."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = dtype
        self.n_tokens = 0
        self.digests = {"ds": _digest(), "index": _digest()}
        # Both stay open while documents stream in; close() closes them.
        self._tokens: BinaryIO = path.open("wb")  # noqa: SIM115
        self._index: BinaryIO = Path(f"{path}.index").open("wb")  # noqa: SIM115

    def write(self, doc: np.ndarray) -> None:
        tokens = doc.astype(self.dtype).tobytes()
        self._tokens.write(tokens)
        self.digests["ds"].update(tokens)
        self.n_tokens += len(doc)
        end = np.array([self.n_tokens], dtype=INDEX_DTYPE).tobytes()
        self._index.write(end)
        self.digests["index"].update(end)

    def close(self) -> None:
        self._tokens.close()
        self._index.close()

    def write_checksum(self) -> None:
        digests = {name: d.hexdigest() for name, d in self.digests.items()}
        record = {"algorithm": "blake2b-128", **digests}
        Path(f"{self.path}{CHECKSUM_SUFFIX}").write_text(json.dumps(record, sort_keys=True))


def _digest() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


class _FolderWriter:
    """Shards ``000_<name>.ds``, ``001_<name>.ds`` ..., rolling over at ``max_tokens`` per file."""

    def __init__(
        self, out_dir: Path, name: str, token_size: int, tokenizer: str, max_tokens: int | None
    ) -> None:
        self.out_dir, self.name, self.tokenizer = out_dir, name, tokenizer
        self.token_size, self.max_tokens = token_size, max_tokens
        self.paths: list[Path] = []
        self.total = 0
        self._shard: _ShardWriter | None = None

    def write(self, doc: np.ndarray) -> None:
        if self._shard is None or (self.max_tokens and self._shard.n_tokens >= self.max_tokens):
            self._finish_shard()
            path = self.out_dir / f"{len(self.paths):03d}_{self.name}.ds"
            self._shard = _ShardWriter(path, TOKEN_DTYPES[self.token_size])
            self.paths.append(path)
        self._shard.write(doc)
        self.total += len(doc)

    def _finish_shard(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard.write_checksum()
            meta = Path(f"{self._shard.path}.metadata")
            write_metadata(meta, self.tokenizer, self.token_size, self._shard.n_tokens)

    def finish(self) -> None:
        self._finish_shard()
        total_meta = self.out_dir / f"{self.name}.ds.metadata"
        write_metadata(total_meta, self.tokenizer, self.token_size, self.total)

    def abort(self) -> None:
        """Close open files without writing metadata: the output is not a finished dataset."""
        if self._shard is not None:
            self._shard.close()


def write_tokenized(
    docs: Iterable[Sequence[int]],
    out_dir: Path,
    vocab_size: int,
    tokenizer_name: str = "transferlab",
    max_tokens_per_file: int | None = None,
    name: str = "tokens",
) -> list[Path]:
    """Stream ``docs`` (token id sequences) into ``out_dir`` as datatrove shards; return the
    ``.ds`` paths. Only one document is held in memory at a time."""
    if "|" in tokenizer_name:
        raise ValueError(f"tokenizer_name {tokenizer_name!r} contains '|'; datatrove splits on it")
    if max_tokens_per_file is not None and max_tokens_per_file <= 0:
        raise ValueError(f"max_tokens_per_file={max_tokens_per_file}; expected a positive count")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = _FolderWriter(
        out_dir, name, token_size_for(vocab_size), tokenizer_name, max_tokens_per_file
    )
    try:
        for doc_id, doc in enumerate(docs):
            writer.write(_checked(doc, doc_id, vocab_size))
    except BaseException:
        writer.abort()
        raise
    writer.finish()
    return writer.paths


def _checked(doc: Sequence[int], doc_id: int, vocab_size: int) -> np.ndarray:
    ids = np.asarray(doc, dtype=np.int64)
    if ids.ndim != 1:
        raise ValueError(f"document {doc_id} is not a flat sequence of token ids")
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids.max() if ids.max() >= vocab_size else ids.min()
        raise ValueError(
            f"document {doc_id} has token id {bad} outside [0, {vocab_size}); "
            "pass the vocab_size of the tokenizer that produced it"
        )
    return ids


def read_metadata_token_size(path: Path) -> int | None:
    """Token size from a ``.ds.metadata`` file, or None when it is absent or does not say."""
    if not path.is_file():
        return None
    first = path.read_text().split("\n", 1)[0]
    _, sep, size = first.rpartition("|")
    if not sep:
        return None
    if not size.strip().isdigit() or int(size) not in TOKEN_DTYPES:
        raise ValueError(f"{path}: token size {size!r} is not 2 or 4")
    return int(size)


def verify_checksum(path: Path) -> None:
    """Check ``path`` (a ``.ds``) and its index against the digests recorded when they were
    written, if any; each file version is read once per process, so reopening costs nothing."""
    record = Path(f"{path}{CHECKSUM_SUFFIX}")
    if not record.is_file():
        return  # written by datatrove or before transferlab recorded checksums
    try:
        expected = json.loads(record.read_text())
    except ValueError:
        raise CorruptArtifact(f"{record} is not the JSON transferlab wrote") from None
    for name, file in (("ds", path), ("index", Path(f"{path}.index"))):
        if name in expected and not _matches(file, expected[name]):
            raise CorruptArtifact(
                f"{file} does not match the checksum recorded when it was written"
            )


def _matches(file: Path, hexdigest: str) -> bool:
    if not file.is_file():
        return False
    stat = file.stat()
    version = (str(file.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if version in _VERIFIED:
        return True
    digest = _digest()
    with file.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != hexdigest:
        return False
    _VERIFIED.add(version)
    return True


class _Shard:
    """One memory-mapped ``.ds`` file and its document ends."""

    def __init__(self, path: Path, token_size: int) -> None:
        self.path = path
        size = path.stat().st_size
        if size % token_size:
            raise CorruptArtifact(
                f"{path}: {size} bytes is not a multiple of the token size {token_size}; "
                "the file is truncated or was written with another token size"
            )
        self.n_tokens = size // token_size
        dtype = TOKEN_DTYPES[token_size]
        # np.memmap cannot map an empty file.
        self.tokens = np.memmap(path, dtype=dtype, mode="r") if size else np.empty(0, dtype=dtype)
        self.doc_ends = self._read_index(Path(f"{path}.index"))
        verify_checksum(path)  # after the structural checks, whose messages say more

    def _read_index(self, index: Path) -> np.ndarray:
        if not index.is_file():
            # datatrove may skip the index (save_index=False): the file is one document.
            return np.array([self.n_tokens] if self.n_tokens else [], dtype=np.int64)
        raw = index.read_bytes()
        if len(raw) % INDEX_DTYPE.itemsize:
            raise ValueError(f"{index}: {len(raw)} bytes is not a whole number of uint64 entries")
        ends = np.frombuffer(raw, dtype=INDEX_DTYPE).astype(np.int64)
        last = int(ends[-1]) if len(ends) else 0
        if last != self.n_tokens:
            raise CorruptArtifact(
                f"{index}: last document end {last} != {self.n_tokens} tokens in {self.path.name}; "
                "the index and the token file do not belong together"
            )
        if len(ends) and (np.diff(ends) < 0).any():
            raise ValueError(f"{index}: document ends are not in increasing order")
        return ends


class TokenizedFolder:
    """All ``*.ds`` files of a folder (sorted by name), read as one stream of tokens.

    ``token_size`` (2 or 4 bytes) is read from each file's ``.ds.metadata``; pass it for folders
    written without metadata. Token reads return arrays of the files' dtype (uint16 or uint32).
    """

    def __init__(self, path: str | Path, token_size: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"tokenized folder {str(self.path)!r} does not exist")
        files = sorted(p for p in self.path.glob("*.ds") if p.is_file())
        if not files:
            raise ValueError(
                f"{self.path}: no .ds files; expected the datatrove tokenized layout "
                "(<name>.ds + <name>.ds.index)"
            )
        self.token_size = self._token_size(files, token_size)
        self.shards = [_Shard(f, self.token_size) for f in files]
        counts = [s.n_tokens for s in self.shards]
        self.file_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.doc_ends = np.concatenate(
            [
                s.doc_ends + start
                for s, start in zip(self.shards, self.file_starts[:-1], strict=True)
            ]
        ).astype(np.int64)

    def _token_size(self, files: list[Path], given: int | None) -> int:
        if given is not None and given not in TOKEN_DTYPES:
            raise ValueError(f"token_size={given}; expected 2 (uint16) or 4 (uint32)")
        sizes = {f: read_metadata_token_size(Path(f"{f}.metadata")) for f in files}
        found = {s for s in sizes.values() if s is not None}
        if given is not None:
            found.add(given)
        if len(found) > 1:
            raise ValueError(
                f"{self.path}: token sizes disagree ({sorted(found)} bytes between the "
                f".ds.metadata files and token_size={given}); a folder holds one tokenizer's files"
            )
        if not found or (given is None and None in sizes.values()):
            missing = next(f for f, s in sizes.items() if s is None)
            raise ValueError(
                f"{missing}: no .ds.metadata giving the token size; pass token_size=2 (vocab of "
                "at most 65536) or 4"
            )
        return found.pop()

    @property
    def dtype(self) -> np.dtype:
        return TOKEN_DTYPES[self.token_size]

    @property
    def n_tokens(self) -> int:
        return int(self.file_starts[-1])

    @property
    def n_docs(self) -> int:
        return len(self.doc_ends)

    def tokens(self, start: int, stop: int) -> np.ndarray:
        """Tokens ``[start, stop)`` of the concatenation of all files (a copy)."""
        if not 0 <= start <= stop <= self.n_tokens:
            raise IndexError(f"token range [{start}, {stop}) outside [0, {self.n_tokens})")
        return np.concatenate(list(self._pieces(start, stop)) or [np.empty(0, self.dtype)])

    def _pieces(self, start: int, stop: int) -> Iterator[np.ndarray]:
        first = int(np.searchsorted(self.file_starts, start, side="right")) - 1
        for i in range(first, len(self.shards)):
            offset = int(self.file_starts[i])
            if offset >= stop:
                break
            yield self.shards[i].tokens[max(start - offset, 0) : stop - offset]

    def document(self, i: int) -> np.ndarray:
        """Tokens of document ``i`` (counting across files in order)."""
        if not 0 <= i < self.n_docs:
            raise IndexError(f"document {i} outside [0, {self.n_docs})")
        start = int(self.doc_ends[i - 1]) if i else 0
        return self.tokens(start, int(self.doc_ends[i]))
