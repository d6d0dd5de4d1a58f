import struct

import numpy as np
import pytest

from transferlab.artifacts import CorruptArtifact
from transferlab.data.shards import TokenizedFolder, _si_count, token_size_for, write_tokenized


def random_docs(n: int, vocab: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, vocab, size=rng.integers(0, 40)).tolist() for _ in range(n)]
    docs[3] = []  # an empty document is legal in datatrove's index (a repeated end)
    return docs


def datatrove_bytes(docs: list[list[int]], fmt: str) -> tuple[bytes, bytes]:
    """What datatrove's TokenizedFile writes: struct-packed tokens and uint64 token ends."""
    tokens = b"".join(struct.pack(f"<{len(d)}{fmt}", *d) for d in docs)
    ends = np.cumsum([len(d) for d in docs]).tolist()
    return tokens, struct.pack(f"<{len(ends)}Q", *ends)


def test_single_file_matches_datatrove_bytes(tmp_path):
    docs = random_docs(20, vocab=1000)
    paths = write_tokenized(iter(docs), tmp_path, vocab_size=1000, tokenizer_name="tok.json")
    assert [p.name for p in paths] == ["000_tokens.ds"]
    tokens, index = datatrove_bytes(docs, "H")
    assert paths[0].read_bytes() == tokens
    assert (tmp_path / "000_tokens.ds.index").read_bytes() == index
    n = sum(map(len, docs))
    meta = f"tok.json|2\n{n}\n{_si_count(n)}"
    assert (tmp_path / "000_tokens.ds.metadata").read_text() == meta
    assert (tmp_path / "tokens.ds.metadata").read_text() == meta  # the merger's total file


def test_uint32_when_vocab_exceeds_uint16(tmp_path):
    assert token_size_for(65536) == 2  # ids 0..65535 still fit, as in datatrove
    assert token_size_for(65537) == 4
    docs = [[70000, 1, 65536], [5]]
    write_tokenized(docs, tmp_path, vocab_size=100_000)
    tokens, index = datatrove_bytes(docs, "I")
    assert (tmp_path / "000_tokens.ds").read_bytes() == tokens
    assert (tmp_path / "000_tokens.ds.index").read_bytes() == index
    folder = TokenizedFolder(tmp_path)
    assert folder.dtype == np.dtype("<u4")
    assert folder.document(0).tolist() == [70000, 1, 65536]


def test_files_roll_over_without_splitting_documents(tmp_path):
    docs = [[1] * 5, [2] * 5, [3] * 3, [4] * 7, [5] * 1]
    paths = write_tokenized(docs, tmp_path, vocab_size=10, max_tokens_per_file=8)
    # a new file starts once the current one holds >= 8 tokens (datatrove's merger rule)
    assert [p.name for p in paths] == ["000_tokens.ds", "001_tokens.ds", "002_tokens.ds"]
    assert [p.stat().st_size for p in paths] == [2 * 10, 2 * 10, 2 * 1]
    folder = TokenizedFolder(tmp_path)
    assert folder.n_docs == 5 and folder.n_tokens == 21
    assert folder.doc_ends.tolist() == [5, 10, 13, 20, 21]
    assert (tmp_path / "001_tokens.ds.index").read_bytes() == struct.pack("<2Q", 3, 10)
    assert (tmp_path / "tokens.ds.metadata").read_text().splitlines()[1] == "21"


def test_folder_reads_across_files(tmp_path):
    docs = random_docs(200, vocab=500)
    paths = write_tokenized((d for d in docs), tmp_path, vocab_size=500, max_tokens_per_file=300)
    assert len(paths) > 5
    folder = TokenizedFolder(tmp_path)
    flat = np.array([t for d in docs for t in d], dtype=np.int64)
    assert folder.n_tokens == len(flat) and folder.n_docs == len(docs)
    assert folder.dtype == np.dtype("<u2")
    for i in [0, 3, 57, 199]:
        assert folder.document(i).tolist() == docs[i]
    rng = np.random.default_rng(1)
    for _ in range(200):
        start, stop = sorted(rng.integers(0, len(flat) + 1, size=2))
        assert np.array_equal(folder.tokens(start, stop), flat[start:stop])
    assert np.array_equal(folder.tokens(0, len(flat)), flat)
    with pytest.raises(IndexError):
        folder.tokens(0, len(flat) + 1)


def test_reads_a_folder_written_by_datatrove_without_metadata(tmp_path):
    docs = [[7, 8, 9], [10], [11, 12]]
    tokens, index = datatrove_bytes(docs, "H")
    (tmp_path / "00000_unshuffled.ds").write_bytes(tokens)
    (tmp_path / "00000_unshuffled.ds.index").write_bytes(index)
    with pytest.raises(ValueError, match="no .ds.metadata giving the token size; pass token_size"):
        TokenizedFolder(tmp_path)
    folder = TokenizedFolder(tmp_path, token_size=2)
    assert folder.tokens(0, 6).tolist() == [7, 8, 9, 10, 11, 12]
    assert folder.document(2).tolist() == [11, 12]


def test_token_size_disagreement(tmp_path):
    write_tokenized([[1, 2]], tmp_path, vocab_size=10)
    with pytest.raises(ValueError, match="token sizes disagree"):
        TokenizedFolder(tmp_path, token_size=4)


def test_truncated_token_file_is_named(tmp_path):
    write_tokenized([[1, 2, 3]], tmp_path, vocab_size=10)
    path = tmp_path / "000_tokens.ds"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"000_tokens.ds: 5 bytes is not a multiple .* 2"):
        TokenizedFolder(tmp_path)


def test_index_that_does_not_match_tokens_is_named(tmp_path):
    write_tokenized([[1, 2, 3], [4]], tmp_path, vocab_size=10)
    (tmp_path / "000_tokens.ds.index").write_bytes(struct.pack("<2Q", 3, 5))
    with pytest.raises(ValueError, match=r"000_tokens.ds.index: last document end 5 != 4 tokens"):
        TokenizedFolder(tmp_path)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"document 1 has token id 10 outside \[0, 10\)"):
        write_tokenized([[1], [10]], tmp_path / "a", vocab_size=10)
    with pytest.raises(ValueError, match="no .ds files"):
        TokenizedFolder(tmp_path / "a" / "..")
    with pytest.raises(ValueError, match="does not exist"):
        TokenizedFolder(tmp_path / "missing")


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0.00 T"), (7, "7.00 T"), (123, "123 T"), (1234, "1.23 kT"), (999_600, "1.00 MT")],
)
def test_metadata_count_format(count, text):
    assert _si_count(count) == text


def test_a_flipped_byte_is_named_by_the_checksum_recorded_when_written(tmp_path):
    write_tokenized([[1, 2, 3], [4, 5]], tmp_path, vocab_size=10)
    assert TokenizedFolder(tmp_path).tokens(0, 5).tolist() == [1, 2, 3, 4, 5]
    path = tmp_path / "000_tokens.ds"
    raw = bytearray(path.read_bytes())
    raw[2] ^= 0xFF  # same size, so only the checksum can tell
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArtifact, match=r"000_tokens.ds does not match the checksum"):
        TokenizedFolder(tmp_path)
