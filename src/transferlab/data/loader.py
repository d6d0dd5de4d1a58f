"""Deterministic, rank-sharded batches of packed token windows.

The token stream (all documents back to back) is cut into windows of ``seq_len + 1`` tokens that
overlap by one token: window ``i`` covers ``[i * seq_len, i * seq_len + seq_len + 1)``, so inputs
and next-token targets of consecutive windows tile the stream. Each epoch visits every window
once, in a permutation drawn from ``(seed, epoch)``. A global batch is the next ``batch_size``
windows of the permutation; rank ``r`` of ``W`` takes the ``r``-th contiguous ``batch_size / W``
of them, so W processes together consume exactly the batch one process would. The position is
a few integers, saved in checkpoints so a resumed run sees the same batches.
"""

from __future__ import annotations

import numpy as np
import torch

from transferlab.data.shards import TokenizedFolder


def count_windows(folder: TokenizedFolder, seq_len: int) -> int:
    """Number of ``seq_len + 1``-token windows (overlapping by one) in ``folder``."""
    return max(folder.n_tokens - 1, 0) // seq_len


def read_windows(folder: TokenizedFolder, seq_len: int, windows: np.ndarray) -> torch.Tensor:
    """Windows ``windows`` of ``folder`` as int64 ``[len(windows), seq_len + 1]``."""
    rows = [folder.tokens(int(w) * seq_len, int(w) * seq_len + seq_len + 1) for w in windows]
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def document_windows(
    folder: TokenizedFolder, documents: range, seq_len: int, limit: int
) -> torch.Tensor:
    """The first ``limit`` windows (fewer when the text runs out) of the stream of ``documents``
    of ``folder`` alone, cut as the loader cuts: ``seq_len + 1`` tokens overlapping by one."""
    start = int(folder.doc_ends[documents.start - 1]) if documents.start else 0
    stop = int(folder.doc_ends[documents.stop - 1]) if len(documents) else start
    count = min(limit, max(stop - start - 1, 0) // seq_len)
    starts = [start + i * seq_len for i in range(count)]
    rows = [folder.tokens(s, s + seq_len + 1).astype(np.int64) for s in starts]
    return (
        torch.from_numpy(np.stack(rows)) if rows else torch.empty(0, seq_len + 1, dtype=torch.int64)
    )


def eval_batches(
    folder: TokenizedFolder, seq_len: int, batch_size: int, n_batches: int
) -> list[torch.Tensor]:
    """The first ``n_batches`` batches of windows in stream order, for evaluation on any data size.

    Unlike ``PackedLoader.fixed_batches`` this is not split by rank and accepts a folder holding
    fewer than ``batch_size`` windows: the last batch holds what is left, and fewer batches come
    back when the windows run out. Every process that calls it gets the same batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected a positive number of windows")
    n_windows = count_windows(folder, seq_len)
    if n_windows == 0:
        raise ValueError(
            f"{folder.path}: {folder.n_tokens} tokens hold no window of seq_len={seq_len} + 1; "
            "use more evaluation data or a smaller seq_len"
        )
    total = min(n_batches * batch_size, n_windows)
    return [
        read_windows(folder, seq_len, np.arange(start, min(start + batch_size, total)))
        for start in range(0, total, batch_size)
    ]


class PackedLoader:
    def __init__(
        self,
        folder: TokenizedFolder,
        seq_len: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len={seq_len} and batch_size={batch_size} must be positive")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} outside [0, world_size={world_size})")
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by world_size={world_size}; "
                "use a global batch size that is a multiple of the number of processes"
            )
        self.folder = folder
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.n_windows = count_windows(folder, seq_len)
        if self.n_windows < batch_size:
            raise ValueError(
                f"{folder.path}: {folder.n_tokens} tokens make {self.n_windows} windows of "
                f"seq_len={seq_len}, fewer than batch_size={batch_size}; use more data or a "
                "smaller batch_size / seq_len"
            )
        self.epoch = 0
        self.position = 0  # index into this epoch's permutation of the next window to use
        self.batches_seen = 0  # global batches drawn since the start of training
        self._order_epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.world_size

    @property
    def tokens_seen(self) -> int:
        """Input tokens in all global batches drawn so far (all ranks together)."""
        return self.batches_seen * self.batch_size * self.seq_len

    def _permutation(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch])
            self._order = rng.permutation(self.n_windows)
            self._order_epoch = self.epoch
        return self._order

    def _next_windows(self) -> np.ndarray:
        """Window indices of the next global batch; advances the position."""
        if self.position + self.batch_size > self.n_windows:  # drop the epoch's remainder
            self.epoch += 1
            self.position = 0
        windows = self._permutation()[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        self.batches_seen += 1
        return windows

    def _read(self, windows: np.ndarray) -> torch.Tensor:
        return read_windows(self.folder, self.seq_len, windows)

    def _rank_slice(self, windows: np.ndarray) -> np.ndarray:
        start = self.rank * self.local_batch_size
        return windows[start : start + self.local_batch_size]

    def next_batch(self) -> torch.Tensor:
        """This rank's share of the next global batch: int64 ``[batch_size / world_size, L + 1]``."""
        return self._read(self._rank_slice(self._next_windows()))

    def global_batch(self) -> torch.Tensor:
        """The whole next global batch ``[batch_size, L + 1]`` (the same on every rank).

        Advances the position exactly as ``next_batch`` does.
        """
        return self._read(self._next_windows())

    def fixed_batches(self, n: int) -> list[torch.Tensor]:
        """Up to ``n`` evaluation batches (this rank's share) of windows in stream order.

        The same for every seed and training position, and leaves the position untouched. Fewer
        than ``n`` come back when the data holds fewer than ``n * batch_size`` windows.
        """
        n = min(n, self.n_windows // self.batch_size)
        batches = []
        for k in range(n):
            windows = np.arange(k * self.batch_size, (k + 1) * self.batch_size)
            batches.append(self._read(self._rank_slice(windows)))
        return batches

    def state_dict(self) -> dict[str, int]:
        """Plain ints (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "batches_seen": self.batches_seen,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "n_windows": self.n_windows,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from ``state``; the data, seed, seq_len and global batch must be the same
        (the number of processes may differ)."""
        missing = sorted(set(self.state_dict()) - set(state))
        if missing:
            raise ValueError(f"loader state lacks {missing}; it was not saved by PackedLoader")
        for key in ("seed", "seq_len", "batch_size", "n_windows"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"loader state has {key}={int(state[key])} but this loader has "
                    f"{key}={getattr(self, key)}; resume with the same data and batch settings"
                )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.batches_seen = int(state["batches_seen"])
