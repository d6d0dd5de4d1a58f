"""Replaced-token detection (ELECTRA, Clark et al. 2020): a small generator trained by masked
language modelling fills in masked positions, and the discriminator, the model the run is
about, tells at every position whether its token is the original or a replacement.

A step selects ``mask_prob`` of the regular (non-special) tokens and replaces them by
``<mask>``; the generator (bidirectional) predicts them with the MLM loss, and a token sampled
from its distribution at each masked position goes into the discriminator's input (sampling
cuts the gradient: the generator learns only from its MLM loss). A position is *replaced* when
the sampled token differs from the original; a sampled original counts as original, as in the
paper. The discriminator (bidirectional) predicts replaced/original at every non-padding
position with a binary cross entropy. The minimized loss per position is the paper's
``generator MLM mean + discriminator_weight * discriminator mean`` (lambda = 50).

The generator is the run's model narrowed to ``generator_width_fraction`` of its heads (same
depth and head width); with ``share_embeddings`` its token embedding is the discriminator's,
projected to its width, and its tied output head is that projection's image (so both networks
learn one token embedding, as the paper shares them). The sampling is drawn by inverse CDF from
one uniform number per position that ``make_batch`` draws from the step's generator, so a
resumed run, another micro batch size or DDP sample the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationError
from torch import nn

from transferlab.config.registry import OBJECTIVES
from transferlab.config.schemas import ModelConfig, ObjectiveConfig, RunConfig
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.models.flops import flops_per_token
from transferlab.models.transformer import Transformer, build_model
from transferlab.objectives.base import Attention, Batch, LossOutput, Objective
from transferlab.objectives.context import TextContext
from transferlab.objectives.networks import ObjectiveNetworks

DISCRIMINATOR_READING = "discriminator"


class Discriminator(Transformer):
    """The run's transformer with a replaced-token head: ``rtd_head`` maps each final hidden
    state to the logit that the token there was replaced. It predicts no tokens, so an untied
    output head is frozen (it would get no gradient, which DDP refuses)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.rtd_head = nn.Linear(cfg.d_model, 1)
        nn.init.normal_(self.rtd_head.weight, std=cfg.init_std)
        nn.init.zeros_(self.rtd_head.bias)
        if self.lm_head is not None:
            self.lm_head.requires_grad_(False)

    def replaced_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, L] logits of "replaced" from final hidden states [B, L, d_model]."""
        return self.rtd_head(hidden).squeeze(-1)


class ProjectedEmbedding(nn.Module):
    """The generator's token embedding: the discriminator's embedding times a projection to the
    generator's width. ``weight`` [vocab, width] is the projected matrix, so the generator's tied
    output head is the shared embedding seen through the same projection."""

    def __init__(self, shared: nn.Embedding, width: int) -> None:
        super().__init__()
        # Held in a tuple so that it is not registered twice: the state dict then holds the
        # shared matrix once (under the discriminator), as safetensors requires.
        self._shared = (shared,)
        self.proj = nn.Linear(shared.embedding_dim, width, bias=False)
        # std 1/sqrt(d) keeps the projected embeddings at the shared ones' scale.
        nn.init.normal_(self.proj.weight, std=shared.embedding_dim**-0.5)

    @property
    def weight(self) -> torch.Tensor:
        return self.proj(self._shared[0].weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self._shared[0](ids))


@dataclass
class ElectraOutput:
    """One forward of generator and discriminator on a micro batch."""

    generator_logits: torch.Tensor  # [M, vocab] at the M masked positions (row-major order)
    replaced: torch.Tensor  # [B, L] bool: the discriminator's input differs from the original
    replaced_logits: torch.Tensor  # [B, L] the discriminator's logits of "replaced"
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)  # the parts', by name


def sample_tokens(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One token per row of ``logits`` [M, vocab] drawn from its softmax by inverse CDF with
    ``uniform`` [M] in [0, 1): the first id whose cumulative probability exceeds it."""
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(dim=-1)
    ids = torch.searchsorted(cdf, uniform.float()[:, None], right=True).squeeze(-1)
    return ids.clamp_(max=logits.shape[-1] - 1)  # rounding may leave the last cdf below 1


class ElectraModel(ObjectiveNetworks):
    """Generator and discriminator in one module, so one optimizer, one checkpoint and one DDP
    wrapper cover both; the discriminator is the model transferred."""

    def __init__(self, discriminator: Discriminator, generator: Transformer) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator

    @property
    def transferred(self) -> Discriminator:
        return self.discriminator

    def forward(
        self,
        inputs: torch.Tensor,
        tokens: torch.Tensor,
        masked: torch.Tensor,
        uniform: torch.Tensor,
    ) -> ElectraOutput:
        """The generator reads ``inputs`` (``tokens`` with ``<mask>`` where ``masked``), its
        samples (drawn with ``uniform``) replace the masked tokens, the discriminator reads the
        result; all [B, L]."""
        gen = self.generator(inputs, attention="bidirectional", output="features")
        logits = F.linear(gen.hidden[masked], gen.head)
        with torch.no_grad():
            sampled = sample_tokens(logits, uniform[masked])
        corrupted = tokens.masked_scatter(masked, sampled)
        disc = self.discriminator(corrupted, attention="bidirectional", output="features")
        aux = {**disc.aux_losses, **{f"generator_{k}": v for k, v in gen.aux_losses.items()}}
        return ElectraOutput(
            logits, corrupted != tokens, self.discriminator.replaced_logits(disc.hidden), aux
        )


class Electra(Objective):
    attention = "bidirectional"

    def __init__(self, cfg: ElectraConfig, special: SpecialTokenIds) -> None:
        self.cfg = cfg
        self.special = special
        self.special_ids = torch.tensor(sorted(special.all))

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        """``tokens`` (the window's inputs), ``masked`` (the positions the generator fills in),
        ``inputs`` (the generator's: ``<mask>`` there), ``uniform`` (the sampling's draw per
        position) and ``generator_weight`` (positions / masked positions of the global batch, per
        row: it turns the generator's summed loss into its mean per position)."""
        tokens = source[:, :-1]
        maskable = ~torch.isin(tokens, self.special_ids)
        masked = (torch.rand(tokens.shape, generator=generator) < self.cfg.mask_prob) & maskable
        uniform = torch.rand(tokens.shape, generator=generator)
        n_masked = int(masked.sum())
        weight = self._n_positions(tokens) / n_masked if n_masked else 0.0
        return {
            "inputs": tokens.masked_fill(masked, self.special.mask),
            "tokens": tokens,
            "masked": masked,
            "uniform": uniform,
            "generator_weight": torch.full((len(tokens),), weight, dtype=torch.float64),
        }

    def _n_positions(self, tokens: torch.Tensor) -> int:
        return int((tokens != self.special.pad).sum())

    def n_targets(self, batch: Batch) -> int:
        """Every non-padding position is a target of the discriminator."""
        return self._n_positions(batch["tokens"])

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        tokens, masked = batch["tokens"], batch["masked"]
        out = model(batch["inputs"], tokens, masked, batch["uniform"])
        real = tokens != self.special.pad
        n = int(real.sum())
        mlm_sum = F.cross_entropy(out.generator_logits.float(), tokens[masked], reduction="sum")
        generator_loss = mlm_sum * batch["generator_weight"][0].float()
        replaced = out.replaced[real]
        logits = out.replaced_logits[real].float()
        disc_loss = F.binary_cross_entropy_with_logits(logits, replaced.float(), reduction="sum")
        metrics = {
            "generator_loss": generator_loss.detach(),
            "discriminator_loss": disc_loss.detach(),
            "replaced": replaced.sum(),
            "discriminator_accuracy": ((logits > 0) == replaced).sum(),
        }
        aux = {name: value.float() * n for name, value in out.aux_losses.items()}
        total = generator_loss + self.cfg.discriminator_weight * disc_loss
        return LossOutput(total, n, aux, metrics)


@OBJECTIVES.register("electra")
class ElectraConfig(ObjectiveConfig):
    name: Literal["electra"] = "electra"
    attention: ClassVar[Attention] = "bidirectional"
    mask_prob: float = Field(default=0.15, gt=0, le=1)  # share of tokens the generator fills in
    # lambda: weight of the discriminator's loss against the generator's MLM loss (paper: 50)
    discriminator_weight: float = Field(default=50.0, gt=0)
    # the generator's width as a share of the model's, in whole heads of the model's head width
    generator_width_fraction: float = Field(default=0.25, gt=0, le=1)
    # the generator's token embedding is the model's, projected to the generator's width
    share_embeddings: bool = True

    @property
    def reading(self) -> str:
        return DISCRIMINATOR_READING

    def generator_config(self, model: ModelConfig) -> ModelConfig:
        """``model`` with ``generator_width_fraction`` of its heads (at least one), the same
        head width and depth, and the mlp width scaled alike when it is given."""
        heads = max(1, round(model.n_heads * self.generator_width_fraction))
        width = heads * model.head_dim
        d_ff = None if model.d_ff is None else max(1, round(model.d_ff * width / model.d_model))
        fields = {**model.to_dict(), "preset": None, "d_model": width, "n_heads": heads}
        return ModelConfig.model_validate({**fields, "d_ff": d_ff})

    def check(self, run: RunConfig) -> None:
        try:
            self.generator_config(run.model)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(
                f"objective.generator_width_fraction={self.generator_width_fraction} gives a "
                f"generator the model's parts refuse ({reason}); raise the fraction"
            ) from None

    def flops_per_token(self, model: ModelConfig, seq_len: int) -> int:
        """The discriminator with its replaced-token head instead of a token head, plus the
        generator with its token head at the masked share of positions and (shared embeddings)
        the projection of each input embedding; the projection of the whole embedding matrix
        for the tied head is paid once per step, not per token, and left out."""
        generator = self.generator_config(model)
        discriminator = flops_per_token(model, seq_len) - _head_flops(model) + 6 * model.d_model
        unmasked_head = _head_flops(generator) * (1 - self.mask_prob)
        projection = 6 * model.d_model * generator.d_model if self.share_embeddings else 0
        gen = flops_per_token(generator, seq_len) - unmasked_head + projection
        return discriminator + round(gen)

    def build_networks(self, model: ModelConfig) -> ElectraModel:
        discriminator = Discriminator(model)
        generator = build_model(self.generator_config(model))
        if self.share_embeddings:
            generator.embed = ProjectedEmbedding(discriminator.embed, generator.config.d_model)
        return ElectraModel(discriminator, generator)

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> Electra:
        return Electra(self, special)


def _head_flops(model: ModelConfig) -> int:
    """Training FLOPs per token of a model's token head (``models.flops``)."""
    return 6 * model.d_model * model.vocab_size
