"""How the loader's packed training windows mix the data domains of an experiment's first run.

    PYTHONPATH=src python scripts/window_domains.py src/transferlab/recipes/moe-global-batch-balance.yaml quick

Prepares (or reuses) the run's data stage, then prints per domain its training documents and
tokens and its validation documents and tokens, and how the training stream, cut into windows of
``seq_len`` input positions as the loader cuts it, mixes domains: the share of windows whose
positions all come from one domain, the mean share of a window's main domain and documents per
window. A training document is assigned to the domain whose tokenized folder holds the same
tokens (the mixture copies documents from the per-domain folders unchanged).
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from transferlab.data.prepare import PreparedData, prepare_data, validation_domains
from transferlab.data.shards import TokenizedFolder
from transferlab.experiment import load_experiment, plan_experiment
from transferlab.train.init import data_config


def _digest(tokens: np.ndarray) -> bytes:
    return hashlib.blake2b(tokens.tobytes(), digest_size=16).digest()


def document_domains(data: PreparedData, names: list[str]) -> np.ndarray:
    """The index (in ``names``) of each training document's domain."""
    owner: dict[bytes, int] = {}
    for k, name in enumerate(names):
        folder = TokenizedFolder(data.root / "domains" / name)
        for i in range(folder.n_docs):
            owner.setdefault(_digest(folder.document(i)), k)
    train = data.train_folder()
    return np.array([owner[_digest(train.document(i))] for i in range(train.n_docs)])


def main(path: str, preset: str | None) -> None:
    cfg = plan_experiment(load_experiment(path, preset)).runs[0].config
    data = prepare_data(data_config(cfg))
    names = [source.source_name for source in cfg.data.sources]
    domains = document_domains(data, names)
    train, seq_len = data.train_folder(), cfg.data.seq_len
    lengths = np.diff(train.doc_ends, prepend=0)
    for k, name in enumerate(names):
        mine = lengths[domains == k]
        print(f"train {name}: {len(mine)} docs, {mine.sum()} tokens, median {np.median(mine):.0f}")
    val = data.val_folder()
    val_lengths = np.diff(val.doc_ends, prepend=0)
    for name, docs in validation_domains(data).items():
        tokens = val_lengths[docs.start : docs.stop].sum()
        print(f"val {name}: {len(docs)} docs, {tokens} tokens")
    print(f"val: {(val.n_tokens - 1) // seq_len} windows")

    position_domain = np.repeat(domains, lengths)
    n_windows = (train.n_tokens - 1) // seq_len
    counts = np.stack(
        [
            np.bincount(position_domain[i * seq_len : (i + 1) * seq_len], minlength=len(names))
            for i in range(n_windows)
        ]
    )
    main_domain, share = counts.argmax(axis=1), counts.max(axis=1) / seq_len
    starts, ends = train.doc_ends - lengths, train.doc_ends
    docs = np.array(
        [np.sum((starts < (i + 1) * seq_len) & (ends > i * seq_len)) for i in range(n_windows)]
    )
    print(
        f"{n_windows} training windows: one domain {np.mean(share == 1):.3f}, main domain's share "
        f"{share.mean():.3f}, documents per window {docs.mean():.2f}"
    )
    for k, name in enumerate(names):
        m = main_domain == k
        print(
            f"  mostly {name}: {m.mean():.3f} of the windows; one domain {np.mean(share[m] == 1):.3f}, "
            f"main share {share[m].mean():.3f}, documents per window {docs[m].mean():.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
