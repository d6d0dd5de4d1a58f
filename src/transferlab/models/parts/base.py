"""The interface of a model part, and what a block hands its parts in the forward pass.

A part is a config class registered by name (``@LINEARS.register("dense")``) that owns one piece
of a block: it builds the module, counts its parameters and training FLOPs from the config alone,
and maps its weights to Hugging Face names, or says why it has no Hugging Face counterpart.
``count_parameters``, ``flops_per_token`` and ``hf_state_dict`` are sums and unions over the
parts, so a new part is one file in this package (imported by ``__init__``) plus its test.

A block is ``x + attention(norm(x))`` then ``x + mlp(norm(x))``; the attention and mlp parts make
their projections with the model's linear part (and QK-norm with its norm part), so choosing
``linear: {name: low_rank, rank: 8}`` factorizes every projection of every block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from transferlab.config.schemas import PartConfig

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig
    from transferlab.models.kv_cache import KVCache

State = dict[str, torch.Tensor]


class AuxLosses:
    """The auxiliary losses a forward's parts report, by name, in the order they came.

    Deliberately not a dict (nor a dataclass): FSDP2 rebuilds the dicts, lists and dataclasses
    among a sharded block's inputs to hook the gradient tensors in them, so a block after the
    first would add its losses to a copy the model never reads; an object of this class is
    passed on as it is."""

    def __init__(self) -> None:
        self._values: dict[str, list[torch.Tensor]] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        self._values.setdefault(name, []).append(value)

    def means(self) -> dict[str, torch.Tensor]:
        """Each name's mean over the values reported under it (over the layers)."""
        return {name: sum(values) / len(values) for name, values in self._values.items()}


@dataclass
class Context:
    """What a block's parts read besides their input, and where they leave auxiliary losses."""

    # Rotary tables for this forward's positions: [L, 1, head_dim], or [B, L, 1, head_dim] when
    # the rows' positions differ (a padded batch decoding with a cache).
    cos: torch.Tensor
    sin: torch.Tensor
    mask: torch.Tensor | None  # boolean [B, 1, L, L_keys], True where a query may attend; or None
    is_causal: bool
    aux_losses: AuxLosses = field(default_factory=AuxLosses)
    # Only when generating: attention stores its keys and values here and attends over all of
    # them (``KVCache.update``); None in training.
    cache: KVCache | None = None

    def add_aux_loss(self, name: str, value: torch.Tensor) -> None:
        """Report a scalar loss (a mean over this forward's positions), e.g. a load-balancing
        loss; the model averages the values reported under one name over its layers."""
        self.aux_losses.add(name, value)


class SublayerModule(nn.Module):
    """What an attention or mlp part builds: ``forward(x [B, L, d_model], ctx) -> [B, L, d_model]``."""

    # Linear submodules whose output joins the residual stream; the model initializes them with
    # a std scaled by 1/sqrt(2 n_layers) (GPT-2), so the stream's variance does not grow with depth.
    residual_outputs: ClassVar[tuple[str, ...]] = ()

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        raise NotImplementedError


class StepStatistics:
    """A module whose training forward needs sums over the optimizer step's whole batch (every
    micro batch of every process), which exist only once all of them went forward: a mixture of
    experts' global-batch expert loads. Before a step's forwards the engine runs its micro batches
    once without gradients while such modules record (``start_recording``, then
    ``stop_recording`` returns the sums), adds the sums of all processes and hands them over
    (``set_step_statistics``); after the step it sets None again (``train.engine``)."""

    @property
    def needs_step_statistics(self) -> bool:
        """Whether this module's training forward reads them (the engine skips the extra
        forward when none does)."""
        return True

    def start_recording(self) -> None:
        """Start summing over the forwards that follow."""
        raise NotImplementedError

    def stop_recording(self) -> torch.Tensor:
        """The sums since ``start_recording`` (1-D, float64), and stop."""
        raise NotImplementedError

    def set_step_statistics(self, sums: torch.Tensor | None) -> None:
        """The sums over the whole step for the step's forwards, or None outside a step."""
        raise NotImplementedError


def init_weights(module: nn.Module, std: float) -> None:
    """Initialize the parameters ``module`` holds itself (not those of its submodules): N(0, std)
    for the weight of an ``nn.Linear`` or ``nn.Embedding``, otherwise the module's own
    ``init_weights(std)`` (a norm sets its scale to 1, a factorized linear scales its factors)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    elif hasattr(module, "init_weights"):
        module.init_weights(std)
    elif next(module.parameters(recurse=False), None) is not None:
        raise TypeError(
            f"{type(module).__name__} holds parameters but has no init_weights(std); "
            "define one so build_model initializes them"
        )


def sub_state(state: State, prefix: str) -> State:
    """The entries of ``state`` under ``prefix``, with the prefix removed."""
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def prefixed(prefix: str, state: State) -> State:
    return {prefix + key: value for key, value in state.items()}


class Part(PartConfig):
    """What every kind of part has: its Hugging Face export (``hf_*``)."""

    def hf_unsupported(self, model: ModelConfig) -> str | None:
        """Why this part has no Hugging Face counterpart (export then fails naming it), or None."""
        return None

    def hf_config(self, model: ModelConfig) -> dict[str, Any]:
        """The fields of the Hugging Face model config this part decides."""
        return {}

    def hf_weights(self, model: ModelConfig, state: State) -> State:
        """This part's weights (``state``: its state dict) under Hugging Face names, relative to
        the Hugging Face module that holds it; fused weights are split."""
        raise NotImplementedError


class LinearPart(Part):
    """A bias-free linear map ``in_features -> out_features``: the blocks' projections."""

    def build(self, in_features: int, out_features: int) -> nn.Module:
        raise NotImplementedError

    def num_params(self, in_features: int, out_features: int) -> int:
        raise NotImplementedError

    def flops_per_token(self, in_features: int, out_features: int) -> int:
        """Training FLOPs per token: a multiply-add is 2 FLOPs forward and 4 backward."""
        raise NotImplementedError

    def hf_weights(self, model: ModelConfig, state: State) -> State:
        """The weights of the Hugging Face ``nn.Linear`` computing the same map: ``{"weight":
        [out_features, in_features]}``."""
        raise NotImplementedError


class NormPart(Part):
    """A normalization over the last dimension (``dim`` wide) with learned parameters."""

    def build(self, dim: int, eps: float) -> nn.Module:
        raise NotImplementedError

    def num_params(self, dim: int) -> int:
        raise NotImplementedError

    def flops_per_token(self, dim: int) -> int:
        """Norms are left out of the count (the PaLM convention: a few FLOPs per entry beside a
        matmul's 2 d_model per entry)."""
        return 0


class SublayerPart(Part):
    """A residual branch of the block (attention or mlp), built from the whole model config."""

    def build(self, model: ModelConfig) -> SublayerModule:
        raise NotImplementedError

    def linear_shapes(self, model: ModelConfig) -> list[tuple[int, int]]:
        """(in_features, out_features) of each projection built with the model's linear part."""
        raise NotImplementedError

    def num_params(self, model: ModelConfig) -> int:
        """Those of the projections; a part with parameters of its own adds them."""
        return sum(model.linear.num_params(*shape) for shape in self.linear_shapes(model))

    def flops_per_token(self, model: ModelConfig, seq_len: int) -> int:
        """Training FLOPs (forward + backward) per token at context ``seq_len``: those of the
        projections; a part that computes more (attention scores) adds it."""
        return sum(model.linear.flops_per_token(*shape) for shape in self.linear_shapes(model))


class AttentionPart(SublayerPart):
    """Mixes positions; reads ``ctx`` for rotary tables and the attention pattern."""


class MlpPart(SublayerPart):
    """Transforms each position on its own."""

    def default_width(self, d_model: int) -> int:
        """The hidden width (``model.ffn_dim``) when ``model.d_ff`` is not set."""
        raise NotImplementedError
