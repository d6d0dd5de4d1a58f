"""Fourier sparsity of the residue embeddings of a `modular` run
(``trainer.callbacks: [{name: fourier_embedding, every: 100, top_k: 5}]``): the share of the
embedding's energy in its ``top_k`` strongest frequencies, logged as ``fourier_top_k_energy``
every ``every`` steps and at the last step.

Nanda et al. 2023 ("Progress measures for grokking") found that a network that generalizes
modular addition embeds residue ``r`` through ``cos(2 pi k r / p)`` and ``sin(2 pi k r / p)`` for
a handful of key frequencies ``k``: the embedding becomes sparse in the Fourier basis over the
residues, while a memorizing one is not. Here ``E`` is the [p, d] matrix of the residues'
token embeddings (rows in residue order, ``worlds.modular.residue_token_ids``), ``F`` its
discrete Fourier transform along the residues, and the energy of frequency ``k`` in
``1 .. (p - 1) / 2`` is ``sum_d |F_kd|^2 + |F_(p-k)d|^2`` (a real signal's ``k`` and ``p - k`` are
one cosine and sine pair). The constant component ``k = 0`` (the mean embedding, the same for
every residue) says nothing about which residue it is and is left out. An embedding with no
structure spreads its energy evenly: ``top_k / ((p - 1) / 2)`` is the value at random
initialization (in expectation, a little above it for the largest of noisy energies); 1.0 means
every residue lies in the span of ``top_k`` frequencies. Like ``weight_norm`` it needs no
held-out data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from transferlab.config.registry import CALLBACKS
from transferlab.config.schemas import CallbackConfig, RunConfig
from transferlab.data.tokenizer import TextTokenizer
from transferlab.objectives.networks import transferred_model
from transferlab.train.callbacks.weight_norm import is_logged_step
from transferlab.train.checkpoint import read_run_config
from transferlab.train.engine import Callback, Engine, StepOutput
from transferlab.worlds.modular import ModularConfig, residue_token_ids

METRIC = "fourier_top_k_energy"


@CALLBACKS.register("fourier_embedding")
class FourierEmbeddingConfig(CallbackConfig):
    """The share of the residue embeddings' energy in their top-k Fourier frequencies."""

    name: Literal["fourier_embedding"] = "fourier_embedding"
    every: int = Field(default=100, gt=0)  # steps between measurements (and the last step)
    top_k: int = Field(default=5, gt=0)  # how many of the strongest frequencies are counted

    def check(self, run: RunConfig) -> None:
        if not isinstance(run.world, ModularConfig) or run.data.sources or run.data.path:
            raise ValueError(
                "the fourier_embedding callback reads the residue embeddings of the modular "
                "world; use world.name=modular (and no data.sources or data.path), or drop it"
            )
        frequencies = (run.world.prime - 1) // 2
        if self.top_k >= frequencies:
            raise ValueError(
                f"fourier_embedding.top_k={self.top_k} counts all {frequencies} frequencies of "
                f"prime {run.world.prime}, so it is always 1; use a top_k below {frequencies}"
            )

    def build(self) -> FourierEmbeddingCallback:
        return FourierEmbeddingCallback(self)


def frequency_energy(embedding: torch.Tensor) -> torch.Tensor:
    """Energy of each frequency ``1 .. (p - 1) / 2`` of the [p, d] ``embedding`` along its rows
    (the constant component left out; ``k`` and ``p - k`` together). ``p`` must be odd."""
    p = embedding.shape[0]
    if p % 2 == 0:
        raise ValueError(f"frequency_energy needs an odd number of residues; got {p}")
    power = torch.fft.fft(embedding.double(), dim=0).abs().pow(2).sum(dim=1)  # [p]
    half = (p - 1) // 2
    return power[1 : half + 1] + power[p - half :].flip(0)


def top_k_energy(embedding: torch.Tensor, top_k: int) -> float:
    """The share of ``frequency_energy`` in its ``top_k`` largest frequencies."""
    energy = frequency_energy(embedding)
    total = float(energy.sum())
    return float(energy.topk(min(top_k, len(energy))).values.sum()) / total if total else 0.0


class FourierEmbeddingCallback(Callback):
    name = "fourier_embedding"

    def __init__(self, cfg: FourierEmbeddingConfig) -> None:
        self.cfg = cfg
        self.residue_ids: list[int] = []

    def _residue_ids(self, engine: Engine) -> list[int]:
        """The residues' token ids, read once, at the first measurement (every rank's run
        directory holds the tokenizer and config by then)."""
        if self.residue_ids:
            return self.residue_ids
        if engine.run_dir is None:
            raise ValueError(
                "the fourier_embedding callback reads the run's tokenizer and config from its "
                "run directory; train with one"
            )
        run_dir = Path(engine.run_dir)
        prime = read_run_config(run_dir).world.prime
        tokenizer = TextTokenizer.from_file(run_dir / "tokenizer.json")
        self.residue_ids = residue_token_ids(tokenizer, prime)
        return self.residue_ids

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if is_logged_step(engine.step, self.cfg.every, engine.max_steps):
            weight = transferred_model(engine.model).embed.weight.detach()
            engine.row[METRIC] = top_k_energy(weight[self._residue_ids(engine)], self.cfg.top_k)
