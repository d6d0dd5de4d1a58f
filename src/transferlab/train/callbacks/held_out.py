"""Each data domain's held-out windows, the one way per-domain measurements pick them: the
trainer's validation (``callbacks.validation``) and the callbacks that measure per domain
(``routing``, ``domain_loss``).

A domain is one real-text source, read from its validation documents
(``data.validation_domains``); a world or a ``data.path`` run is one domain. Windows are cut as
the loader cuts them (``data.document_windows``: ``seq_len + 1`` tokens overlapping by one, from
the domain's documents alone), so they never mix domains.
"""

from __future__ import annotations

import logging

import torch

from transferlab.config.schemas import RunConfig
from transferlab.data.loader import document_windows
from transferlab.data.prepare import PreparedData, prepare_data, validation_domains
from transferlab.objectives import Batch
from transferlab.train.batching import slice_rows
from transferlab.train.checkpoint import read_run_config
from transferlab.train.engine import Engine
from transferlab.train.init import data_config
from transferlab.train.rng import seeded_generator

log = logging.getLogger(__name__)


def require_held_out(run: RunConfig, callback: str, use: str) -> None:
    """Refuse (one line) a run whose domains hold no held-out text for ``callback`` to ``use``."""
    if run.data.val_fraction == 0 and run.data.path is None:
        raise ValueError(
            f"{callback} callback: data.val_fraction is 0, so no domain has held-out text to "
            f"{use}; raise data.val_fraction or drop the callback"
        )


def held_out_windows(
    data: PreparedData, seq_len: int, windows: int, purpose: str, multiple: int = 1
) -> dict[str, torch.Tensor]:
    """Per domain (in source order), its first ``windows`` held-out windows, cut down to a
    multiple of ``multiple`` (the number of processes that share them). A domain left with no
    window is left out, with a warning naming ``purpose``."""
    folder, out = data.val_folder(), {}
    for domain, documents in validation_domains(data).items():
        rows = document_windows(folder, documents, seq_len, windows)
        rows = rows[: len(rows) - len(rows) % multiple]
        if not len(rows):
            log.warning("%s: domain %s holds no held-out window; left out", purpose, domain)
            continue
        out[domain] = rows
    return out


def domain_micro_batches(engine: Engine, windows: int, purpose: str) -> dict[str, list[Batch]]:
    """Per domain (in source order), its first ``windows`` held-out windows as the objective's
    micro batches of the run's micro batch size. The objective's randomness (mlm's masks) is
    seeded by the run's seed and ``purpose``, so every call reads the same inputs and targets. A
    domain whose held-out text holds no whole window is left out, with a warning."""
    cfg = read_run_config(engine.run_dir)
    data = prepare_data(data_config(cfg))
    size, out = engine.plan.micro_batch_size, {}
    for domain, rows in held_out_windows(data, cfg.data.seq_len, windows, purpose).items():
        batch = engine.objective.make_batch(rows, seeded_generator(cfg.seed, purpose))
        out[domain] = [
            slice_rows(batch, s, min(s + size, len(rows))) for s in range(0, len(rows), size)
        ]
    return out
