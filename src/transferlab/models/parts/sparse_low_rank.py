"""``sparse_low_rank``: SLTrain's linear map W = (alpha / rank) B A + S (Han et al., 2024).

B [out, rank] and A [rank, in] form a low-rank product as in ``low_rank``; S is sparse with a
fixed random support: ``nnz = floor(density * in * out)`` positions drawn uniformly without
replacement when the layer is built and never changed, where only the values train. Parameters,
their gradients and the optimizer's state therefore scale with ``rank * (in + out) + nnz``
instead of ``in * out``.

The support is drawn from torch's global generator at construction, which ``build_model``'s
caller seeds with the model seed (the trainer: ``cfg.seed``): the same seed gives every layer the
same support, and each layer (a later draw of the stream) its own. It is a persistent buffer of
flat positions ``row * in + col``, sorted, so checkpoints hold it: a resumed run, a child stage
or a loaded model reads the support it trained with, whatever the generator's state.

The forward composes W densely and applies it as one matmul (``ComposedLinear``): at the tiny
and small presets' shapes its forward plus backward takes 1.00-1.28x (median 1.12x) a dense
``nn.Linear``'s time, where ``torch.sparse`` for S takes 2.0x (CSR) and 4.4x (COO); see
``benchmarks/sparse_linear.py``.

Initialization is the paper's, not ``model.init_std``: A ~ U(+-1/sqrt(in)) (nn.Linear's
Kaiming-uniform), B = 0, the values ~ U(+-1/sqrt(in)); the training starts from W = S.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from transferlab.config.registry import LINEARS
from transferlab.models.parts.base import LinearPart, State
from transferlab.models.parts.low_rank import check_low_rank

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig


def compose_weight(
    b: torch.Tensor, a: torch.Tensor, values: torch.Tensor, support: torch.Tensor, scale: float
) -> torch.Tensor:
    """The dense [out, in] matrix ``scale * b @ a`` with ``values`` added at the flat positions
    ``support``, in the parameters' dtype (also under autocast)."""
    with torch.autocast(b.device.type, enabled=False):
        weight = torch.mm(b, a).mul_(scale)
    return weight.view(-1).index_add_(0, support, values).view_as(weight)


class ComposedLinear(torch.autograd.Function):
    """``x @ W.T`` for the composed W, which is not kept for backward (a dense matrix per layer
    alive until its backward is what the parameterization saves): backward composes it again.

    The matmuls over tokens run in the compute dtype (bf16 under autocast, as a dense layer's
    would); W, its gradient and the factors' gradients stay in the parameters' dtype. The dense
    gradient of W exists only inside one layer's backward; the values get it at their support.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        b: torch.Tensor,
        a: torch.Tensor,
        values: torch.Tensor,
        support: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        x = x.to(dtype)  # saved in the compute dtype, as autocast saves a dense layer's input
        ctx.save_for_backward(x, b, a, values, support)
        ctx.scale = scale
        return F.linear(x, compose_weight(b, a, values, support, scale).to(dtype))

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, b, a, values, support = ctx.saved_tensors
        grad_x = grad_b = grad_a = grad_values = None
        if ctx.needs_input_grad[0]:
            weight = compose_weight(b, a, values, support, ctx.scale)
            grad_x = grad_out.to(x.dtype) @ weight.to(x.dtype)
        if any(ctx.needs_input_grad[1:4]):
            tokens_out = grad_out.reshape(-1, grad_out.shape[-1]).to(x.dtype)
            grad_w = (tokens_out.T @ x.reshape(-1, x.shape[-1])).to(b.dtype)
            grad_b = grad_w @ a.T * ctx.scale
            grad_a = b.T @ grad_w * ctx.scale
            grad_values = grad_w.view(-1).index_select(0, support)
        return grad_x, grad_b, grad_a, grad_values, None, None


def draw_support(in_features: int, out_features: int, nnz: int) -> torch.Tensor:
    """``nnz`` distinct flat positions of an [out, in] matrix, uniformly at random from torch's
    global generator, sorted (int32 while the positions fit: half the bytes of int64)."""
    size = in_features * out_features
    positions = torch.randperm(size)[:nnz].sort().values
    return positions.to(torch.int32 if size <= torch.iinfo(torch.int32).max else torch.int64)


class SparseLowRankLinear(nn.Module):
    def __init__(
        self, in_features: int, out_features: int, rank: int, nnz: int, scale: float
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.scale = in_features, out_features, scale
        self.b = nn.Parameter(torch.empty(out_features, rank))
        self.a = nn.Parameter(torch.empty(rank, in_features))
        self.values = nn.Parameter(torch.empty(nnz))
        self.register_buffer("support", draw_support(in_features, out_features, nnz))

    def init_weights(self, std: float) -> None:
        # The paper's initialization (see the module docstring), whatever the model's std.
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.a, -bound, bound)
        nn.init.zeros_(self.b)
        nn.init.uniform_(self.values, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ComposedLinear.apply(x, self.b, self.a, self.values, self.support, self.scale)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.a.shape[0]}, nnz={self.values.numel()}, scale={self.scale:g}"
        )


@LINEARS.register("sparse_low_rank")
class SparseLowRankConfig(LinearPart):
    name: Literal["sparse_low_rank"] = "sparse_low_rank"
    rank: int = Field(gt=0)  # the inner width of B A; below min(d_model, ffn_dim)
    density: float = 0.03  # the paper's delta: the fraction of W's entries that S holds
    # B A is scaled by alpha / rank, as LoRA's product is; 32 is the paper's LLaMA-60M setting.
    alpha: float = Field(default=32.0, gt=0)

    def check(self, model: ModelConfig) -> None:
        check_low_rank(self.rank, model)
        if self.density == 0:
            raise ValueError(
                "model.linear.density=0 leaves no sparse part: that is the low_rank part; "
                f"use linear: {{name: low_rank, rank: {self.rank}}}"
            )
        if not 0 < self.density < 1:
            raise ValueError(
                f"model.linear.density={self.density} is not a fraction in (0, 1) of a weight's "
                "entries; the paper uses 0.01-0.05"
            )
        shapes = model.attention.linear_shapes(model) + model.mlp.linear_shapes(model)
        smallest = min(shapes, key=lambda shape: shape[0] * shape[1])
        if self.nnz(*smallest) == 0:
            raise ValueError(
                f"model.linear.density={self.density} gives the {smallest[0]} x {smallest[1]} "
                "projection no sparse entry; raise the density"
            )

    def nnz(self, in_features: int, out_features: int) -> int:
        """The number of entries of S in an in x out projection."""
        return math.floor(self.density * in_features * out_features)

    def build(self, in_features: int, out_features: int) -> nn.Module:
        nnz = self.nnz(in_features, out_features)
        return SparseLowRankLinear(
            in_features, out_features, self.rank, nnz, self.alpha / self.rank
        )

    def num_params(self, in_features: int, out_features: int) -> int:
        return self.rank * (in_features + out_features) + self.nnz(in_features, out_features)

    def flops_per_token(self, in_features: int, out_features: int) -> int:
        """Those of a dense layer: each token meets the composed in x out matrix. Composing it
        (2 rank in out FLOPs in the forward, again in the backward, and 4 rank in out for the
        factors' gradients) is per micro batch, not per token, and left out."""
        return 6 * in_features * out_features

    def hf_weights(self, model: ModelConfig, state: State) -> State:
        """The multiplied-out W: the export is a dense model, larger than the trained one."""
        scale = self.alpha / self.rank
        weight = compose_weight(state["b"], state["a"], state["values"], state["support"], scale)
        return {"weight": weight}
