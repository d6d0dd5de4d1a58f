"""UL2's mixture of denoisers (Tay et al. 2022, "UL2: Unifying Language Learning Paradigms").

Each row of a batch draws one denoiser, with probability proportional to its weight, from the
objective's own generator (so the draw is the same on resume and on every process). A denoiser
is span corruption (``R``: regular, short spans at a low rate; ``X``: extreme, long spans or a
high rate) or prefix LM (``S``: sequential), and its row opens with the paradigm's mode token
inside the prefix: ``[NLU]`` for R, ``[S2S]`` for S, ``[NLG]`` for X::

    R/X row   [NLU] a b <X0> e f <X1> | <X0> c d <X1> g  pad ...   (span_corruption's row)
    S row     [S2S] t0 t1 t2 | t3 t4 ...                            (prefix_lm's row)

The rows are built by ``span_corruption.SpanCorruption`` and ``prefix_lm.PrefixLM`` with the
mode token as their lead token, so each keeps its own layout, loss positions and prefix. The
default mixture is the paper's seven denoisers, R: (span 3, 15%), (8, 15%); S; X: (3, 50%),
(8, 50%), (64, 15%), (64, 50%), weighted equally here. Downstream tasks do not prepend a mode
token when they read a ul2 model (see docs/user-guide.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from transferlab.config.base import BaseConfig
from transferlab.config.registry import OBJECTIVES
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives.base import (
    Attention,
    Batch,
    TokenPredictionConfig,
    TokenPredictionObjective,
)
from transferlab.objectives.context import TextContext
from transferlab.objectives.prefix_lm import PrefixLM, PrefixLmConfig
from transferlab.objectives.span_corruption import (
    SpanCorruption,
    check_sentinels,
    sentinel_tokens,
)
from transferlab.objectives.spans import SpanNoise

if TYPE_CHECKING:
    from transferlab.config import RunConfig

MODE_TOKENS: dict[str, str] = {"R": "[NLU]", "S": "[S2S]", "X": "[NLG]"}


class DenoiserConfig(BaseConfig):
    """One denoiser of the mixture: ``kind`` R or X (span corruption, which needs
    ``mean_span_length`` and ``noise_density``) or S (prefix LM, which takes neither)."""

    kind: Literal["R", "S", "X"]  # R/X: span corruption; S: prefix LM
    weight: float = Field(default=1.0, gt=0)  # relative share of the rows
    mean_span_length: float | None = Field(default=None, ge=1)  # R/X: mean tokens per span
    noise_density: float | None = Field(default=None, gt=0, lt=1)  # R/X: share of noise

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> DenoiserConfig:
        spans = (self.mean_span_length, self.noise_density)
        if self.kind == "S" and spans != (None, None):
            raise ValueError(
                "the S denoiser is prefix LM; remove its mean_span_length and noise_density"
            )
        if self.kind != "S" and None in spans:
            raise ValueError(
                f"the {self.kind} denoiser corrupts spans; "
                "give it both mean_span_length and noise_density"
            )
        return self

    @property
    def noise(self) -> SpanNoise:
        return SpanNoise(self.noise_density, self.mean_span_length)


def _denoiser(kind: str, span: float | None = None, density: float | None = None) -> dict:
    return {"kind": kind, "mean_span_length": span, "noise_density": density}


PAPER_MIXTURE = (
    _denoiser("R", 3, 0.15),
    _denoiser("R", 8, 0.15),
    _denoiser("S"),
    _denoiser("X", 3, 0.5),
    _denoiser("X", 8, 0.5),
    _denoiser("X", 64, 0.15),
    _denoiser("X", 64, 0.5),
)


class UL2(TokenPredictionObjective):
    attention = "prefix"

    def __init__(
        self, weights: torch.Tensor, denoisers: list[TokenPredictionObjective], z_loss: float
    ) -> None:
        super().__init__(z_loss)
        self.weights = weights
        self.denoisers = denoisers

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        choice = torch.multinomial(self.weights, len(source), replacement=True, generator=generator)
        length = source.shape[1] - 1
        batch = {
            "inputs": torch.empty((len(source), length), dtype=source.dtype),
            "targets": torch.empty((len(source), length), dtype=torch.long),
            "prefix_len": torch.empty(len(source), dtype=torch.long),
        }
        for i, denoiser in enumerate(self.denoisers):  # in order: one draw sequence per batch
            rows = (choice == i).nonzero().flatten()
            if len(rows):
                for name, value in denoiser.make_batch(source[rows], generator).items():
                    batch[name][rows] = value
        return batch


@OBJECTIVES.register("ul2")
class Ul2Config(TokenPredictionConfig):
    name: Literal["ul2"] = "ul2"
    attention: ClassVar[Attention] = "prefix"
    # the mixture (default: the paper's seven denoisers, equally weighted)
    denoisers: list[DenoiserConfig] = Field(
        default_factory=lambda: [DenoiserConfig(**d) for d in PAPER_MIXTURE], min_length=1
    )
    num_sentinels: int = Field(default=100, ge=1)  # sentinel tokens added (T5: 100)

    def added_tokens(self) -> tuple[str, ...]:
        """The sentinels (the ids span_corruption gives them), then the three mode tokens."""
        return (*sentinel_tokens(self.num_sentinels), *MODE_TOKENS.values())

    def check(self, run: RunConfig) -> None:
        for i, denoiser in enumerate(self.denoisers):
            if denoiser.kind != "S":
                what = f"ul2 denoiser {i} ({denoiser.kind})"
                check_sentinels(denoiser.noise, run.data.seq_len, self.num_sentinels, what, 1)

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> UL2:
        sentinels = torch.arange(vocab_size, vocab_size + self.num_sentinels)
        mode_ids = {kind: vocab_size + self.num_sentinels + i for i, kind in enumerate(MODE_TOKENS)}
        denoisers: list[TokenPredictionObjective] = [
            PrefixLM(PrefixLmConfig(), special, lead=mode_ids["S"])
            if d.kind == "S"
            else SpanCorruption(d.noise, special, sentinels, lead=mode_ids[d.kind])
            for d in self.denoisers
        ]
        weights = torch.tensor([d.weight for d in self.denoisers], dtype=torch.double)
        return UL2(weights, denoisers, self.z_loss)
