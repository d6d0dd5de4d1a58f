import io

import numpy as np
import pytest
import torch

from transferlab.data.loader import PackedLoader, eval_batches
from transferlab.data.shards import TokenizedFolder, write_tokenized

SEQ = 8


@pytest.fixture
def folder(tmp_path) -> TokenizedFolder:
    # token t has id t % 1000, so a window's start can be read off its first token; several files
    # so windows cross file boundaries
    stream = np.arange(8 * 25 + 1) % 1000  # 201 tokens: exactly 25 windows of 8 (+1)
    docs = [stream[i : i + 13].tolist() for i in range(0, len(stream), 13)]
    write_tokenized(docs, tmp_path, vocab_size=1000, max_tokens_per_file=50)
    return TokenizedFolder(tmp_path)


def window_ids(batch: torch.Tensor) -> list[int]:
    """Window index of each row (first token = window * SEQ)."""
    return [int(row[0]) // SEQ for row in batch]


def test_windows_overlap_by_one_token(folder):
    loader = PackedLoader(folder, seq_len=SEQ, batch_size=4)
    assert loader.n_windows == 25
    batch = loader.next_batch()
    assert batch.dtype == torch.int64 and batch.shape == (4, SEQ + 1)
    for row in batch:
        start = int(row[0])
        assert row.tolist() == list(range(start, start + SEQ + 1))
        assert start % SEQ == 0


def test_same_seed_same_batches_and_different_seed_differs(folder):
    a = PackedLoader(folder, SEQ, 4, seed=3)
    b = PackedLoader(folder, SEQ, 4, seed=3)
    c = PackedLoader(folder, SEQ, 4, seed=4)
    batches_a = [a.next_batch() for _ in range(10)]
    batches_b = [b.next_batch() for _ in range(10)]
    batches_c = [c.next_batch() for _ in range(10)]
    assert torch.equal(torch.stack(batches_a), torch.stack(batches_b))
    assert not torch.equal(torch.stack(batches_a), torch.stack(batches_c))


def test_every_window_once_per_epoch_and_rollover(folder):
    loader = PackedLoader(folder, SEQ, batch_size=4, seed=1)
    per_epoch = 25 // 4  # 6 batches; the last window of each epoch's permutation is dropped
    first = [w for _ in range(per_epoch) for w in window_ids(loader.global_batch())]
    assert len(set(first)) == 24 and set(first) <= set(range(25))
    assert loader.epoch == 0
    second = window_ids(loader.global_batch())
    assert loader.epoch == 1 and loader.position == 4
    expected = np.random.default_rng([1, 1]).permutation(25)[:4].tolist()
    assert second == expected
    assert loader.tokens_seen == (per_epoch + 1) * 4 * SEQ


def test_rank_shards_partition_the_global_batch(folder):
    world = 4
    reference = PackedLoader(folder, SEQ, batch_size=8, seed=7)
    ranks = [PackedLoader(folder, SEQ, 8, rank=r, world_size=world, seed=7) for r in range(world)]
    for _ in range(5):
        full = reference.global_batch()
        parts = [loader.next_batch() for loader in ranks]
        assert all(p.shape == (2, SEQ + 1) for p in parts)
        assert torch.equal(torch.cat(parts), full)
        ids = [set(window_ids(p)) for p in parts]
        assert set.union(*ids) == set(window_ids(full))
        assert sum(map(len, ids)) == 8  # pairwise disjoint
    # every rank's global_batch is the same full batch
    assert torch.equal(ranks[0].global_batch(), ranks[3].global_batch())


def test_resume_is_exact_through_an_epoch_boundary(folder):
    uninterrupted = PackedLoader(folder, SEQ, 4, seed=5)
    expected = [uninterrupted.next_batch() for _ in range(15)]

    first = PackedLoader(folder, SEQ, 4, seed=5)
    got = [first.next_batch() for _ in range(5)]
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert all(type(v) is int for v in state.values())

    resumed = PackedLoader(folder, SEQ, 4, seed=5)
    resumed.load_state_dict(state)
    got += [resumed.next_batch() for _ in range(10)]
    assert torch.equal(torch.stack(got), torch.stack(expected))
    assert resumed.epoch == 2 and resumed.tokens_seen == 15 * 4 * SEQ


def test_resume_on_more_processes_continues_the_same_global_batches(folder):
    single = PackedLoader(folder, SEQ, 4, seed=2)
    single.next_batch()
    state = single.state_dict()
    expected = single.next_batch()
    ranks = [PackedLoader(folder, SEQ, 4, rank=r, world_size=2, seed=2) for r in range(2)]
    for loader in ranks:
        loader.load_state_dict(state)
    assert torch.equal(torch.cat([loader.next_batch() for loader in ranks]), expected)


def test_load_state_rejects_other_settings(folder):
    state = PackedLoader(folder, SEQ, 4, seed=5).state_dict()
    with pytest.raises(ValueError, match="seed=5 but this loader has seed=6"):
        PackedLoader(folder, SEQ, 4, seed=6).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size=4 but this loader has batch_size=2"):
        PackedLoader(folder, SEQ, 2, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="lacks"):
        PackedLoader(folder, SEQ, 4, seed=5).load_state_dict({"epoch": 0})


def test_fixed_batches_are_seed_independent_and_leave_state_alone(folder):
    loader = PackedLoader(folder, SEQ, 4, seed=9)
    loader.next_batch()
    state = loader.state_dict()
    fixed = loader.fixed_batches(3)
    assert loader.state_dict() == state
    assert [window_ids(b) for b in fixed] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    other = PackedLoader(folder, SEQ, 4, seed=0).fixed_batches(3)
    assert torch.equal(torch.stack(fixed), torch.stack(other))
    assert len(loader.fixed_batches(100)) == 6  # only 25 // 4 full batches exist
    rank1 = PackedLoader(folder, SEQ, 4, rank=1, world_size=2).fixed_batches(1)
    assert window_ids(rank1[0]) == [2, 3]


def test_eval_batches_cover_small_data_in_order(folder, tmp_path):
    batches = eval_batches(folder, SEQ, batch_size=10, n_batches=5)
    assert [b.shape[0] for b in batches] == [10, 10, 5]  # 25 windows in all, the last batch short
    assert [w for b in batches for w in window_ids(b)] == list(range(25))
    assert torch.equal(batches[0], PackedLoader(folder, SEQ, 10, seed=4).fixed_batches(1)[0])
    assert len(eval_batches(folder, SEQ, batch_size=10, n_batches=1)) == 1
    write_tokenized([[1, 2, 3]], tmp_path / "small", vocab_size=10)
    with pytest.raises(ValueError, match=r"3 tokens hold no window of seq_len=8"):
        eval_batches(TokenizedFolder(tmp_path / "small"), SEQ, 4, 1)


def test_bad_settings_are_clear_errors(folder):
    with pytest.raises(ValueError, match=r"25 windows of seq_len=8, fewer than batch_size=32"):
        PackedLoader(folder, SEQ, 32)
    with pytest.raises(ValueError, match="batch_size=6 is not divisible by world_size=4"):
        PackedLoader(folder, SEQ, 6, rank=0, world_size=4)
    with pytest.raises(ValueError, match=r"rank=2 outside \[0, world_size=2\)"):
        PackedLoader(folder, SEQ, 4, rank=2, world_size=2)
