"""``moe``: a mixture of SwiGLU experts behind a top-k softmax router, dropless.

Routing (Mixtral's convention): router logits ``x @ W_r.T`` in fp32 (``W_r`` [n_experts,
d_model], a dense ``nn.Linear`` whatever the linear part, as the output head is), probabilities
``p = softmax(logits)`` over all experts, and each token goes to its ``top_k`` most probable
experts, whose outputs are summed weighted by their ``p`` renormalized to sum to 1 over the
chosen k (``normalize_top_k: false`` keeps the raw ``p``, as OLMoE does). Dropless: there is no
capacity, every token reaches its k experts. The token-slots are sorted by expert and each
expert runs once on its contiguous block (a loop over experts, never over tokens). An optional
shared expert sees every token, unweighted (DeepSeekMoE).

Each expert is the ``swiglu`` block of width ``model.ffn_dim``, its projections built with the
model's linear part (so ``linear: low_rank`` factorizes every expert). ``model.d_ff`` sets that
width; by default it is the dense SwiGLU's width divided by the experts a token passes through
(``top_k`` plus the shared one), rounded, so the active parameters per token match the dense
model's up to that rounding and the router's ``d_model * n_experts``.

Auxiliary losses, each a mean over the forward's positions (the model averages them over layers,
the objective weights them into the step) and logged under their names with the coefficient
applied:

- ``lbl`` = ``balance_coef * n_experts * sum_i f_i * p_i``: ``f_i`` is the fraction of routed
  token-slots (tokens times top_k) that went to expert i (no gradient), ``p_i`` the mean router
  probability of expert i over this forward's positions. Uniform routing gives 1 whatever top_k
  (Hugging Face Mixtral/OLMoE count each of the k choices as a full token: their value is top_k
  times this one). ``balance: micro`` takes ``f`` from this forward (a micro batch of one
  process); ``balance: global`` from the optimizer step's whole batch, every micro batch of every
  process, which the engine hands over before the step (``parts.base.StepStatistics``). Weighted
  by tokens over the step's micro batches (as the objective weights them when every position is
  a target, clm) the loss is then ``n_experts * sum_i f_i * p_i`` of the global batch exactly,
  and accumulation or DDP cannot change it.
- ``router_z`` = ``router_z_coef * mean_t logsumexp(logits_t)^2`` (ST-MoE's router z-loss).

A coefficient of 0 leaves its loss out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from transferlab.config.registry import MLPS
from transferlab.models.parts.base import Context, MlpPart, StepStatistics, SublayerModule
from transferlab.models.parts.mlp import SwiGLU, SwigluConfig

if TYPE_CHECKING:
    from transferlab.config.schemas import ModelConfig


class Routing(NamedTuple):
    """A forward's routing of its T positions."""

    logits: torch.Tensor  # [T, n_experts], fp32
    probs: torch.Tensor  # [T, n_experts]: softmax over all experts
    experts: torch.Tensor  # [T, top_k]: the chosen experts, most probable first
    weights: torch.Tensor  # [T, top_k]: their weights in the output
    loads: torch.Tensor  # [n_experts]: token-slots routed to each expert (int64)


class MixtureOfExperts(SublayerModule, StepStatistics):
    def __init__(self, cfg: ModelConfig, part: MoeConfig) -> None:
        super().__init__()
        self.top_k = part.top_k
        self.normalize_top_k = part.normalize_top_k
        self.global_balance = part.balance == "global"
        self.balance_coef = part.balance_coef
        self.router_z_coef = part.router_z_coef
        self.router = nn.Linear(cfg.d_model, part.n_experts, bias=False)
        # SwiGLU names its residual output ``down``, so each expert gets the depth-scaled init.
        self.experts = nn.ModuleList(SwiGLU(cfg) for _ in range(part.n_experts))
        self.shared = SwiGLU(cfg) if part.shared_expert else None
        self._recorded: torch.Tensor | None = None
        self._step_loads: torch.Tensor | None = None

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    def route(self, x: torch.Tensor) -> Routing:
        """The routing of positions ``x`` [T, d_model]; in fp32 even under autocast, so that
        near-ties between experts are not decided by bf16 rounding."""
        with torch.autocast(x.device.type, enabled=False):
            logits = F.linear(x.float(), self.router.weight.float())
        probs = logits.softmax(dim=-1)
        weights, experts = probs.topk(self.top_k, dim=-1)
        if self.normalize_top_k:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        loads = torch.bincount(experts.flatten(), minlength=self.n_experts)
        return Routing(logits, probs, experts, weights, loads)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        flat = x.flatten(0, -2)
        routing = self.route(flat)
        out = self._mix(flat, routing, ctx)
        if self.shared is not None:
            out = out + self.shared(flat, ctx)
        if self._recorded is not None:
            self._recorded += routing.loads.to(self._recorded)
        if self.balance_coef:
            ctx.add_aux_loss("lbl", self.balance_coef * self.balance_loss(routing))
        if self.router_z_coef:
            z = torch.logsumexp(routing.logits, dim=-1).square().mean()
            ctx.add_aux_loss("router_z", self.router_z_coef * z)
        return out.view_as(x)

    def _mix(self, flat: torch.Tensor, routing: Routing, ctx: Context) -> torch.Tensor:
        """Each token's sum of its k experts' outputs, weighted: the T * k token-slots sorted by
        expert (a stable sort keeps each expert's tokens in order), every expert run once on
        its block, the outputs put back in slot order."""
        slots = routing.experts.flatten()  # slot s belongs to token s // top_k
        order = slots.argsort(stable=True)
        grouped = flat[order // self.top_k]
        blocks = grouped.split(routing.loads.tolist())
        outputs = [expert(rows, ctx) for expert, rows in zip(self.experts, blocks, strict=True)]
        per_slot = torch.cat(outputs)[order.argsort()].view(-1, self.top_k, flat.shape[-1])
        return (per_slot * routing.weights.unsqueeze(-1).to(per_slot.dtype)).sum(dim=1)

    def balance_loss(self, routing: Routing) -> torch.Tensor:
        """``n_experts * sum_i f_i * p_i`` (without the coefficient): ``f`` from the step's whole
        batch when balancing globally inside a step, else from this forward's own routing."""
        use_step = self.global_balance and self._step_loads is not None
        loads = self._step_loads if use_step else routing.loads
        fractions = (loads / loads.sum()).to(routing.probs)
        return self.n_experts * (fractions * routing.probs.mean(dim=0)).sum()

    # ---------------------------------------------------------------- step statistics: loads
    @property
    def needs_step_statistics(self) -> bool:
        return self.global_balance and self.balance_coef > 0

    def start_recording(self) -> None:
        self._recorded = torch.zeros(self.n_experts, dtype=torch.float64)

    def stop_recording(self) -> torch.Tensor:
        recorded, self._recorded = self._recorded, None
        if recorded is None:
            raise RuntimeError("stop_recording without start_recording")
        return recorded

    def set_step_statistics(self, sums: torch.Tensor | None) -> None:
        self._step_loads = None if sums is None else sums.to(self.router.weight.device)


@MLPS.register("moe")
class MoeConfig(MlpPart):
    name: Literal["moe"] = "moe"
    n_experts: int = Field(default=8, ge=2)  # routed experts per layer
    top_k: int = Field(default=2, gt=0)  # experts each token goes to (at most n_experts)
    shared_expert: bool = False  # also one expert every token passes through, unweighted
    normalize_top_k: bool = True  # Mixtral, Qwen-MoE; OLMoE does not renormalize
    # where the balance loss counts expert loads: this micro batch, or the step's whole batch
    balance: Literal["micro", "global"] = "global"
    balance_coef: float = Field(default=0.01, ge=0)  # weight of the load-balance loss; 0: none
    router_z_coef: float = Field(default=0.001, ge=0)  # weight of the router z-loss; 0: none

    @model_validator(mode="after")
    def _top_k_fits(self) -> MoeConfig:
        if self.top_k > self.n_experts:
            raise ValueError(
                f"model.mlp.top_k={self.top_k} exceeds n_experts={self.n_experts}; a token "
                "cannot go to more experts than there are: lower top_k or add experts"
            )
        return self

    @property
    def active_experts(self) -> int:
        """The experts each token passes through."""
        return self.top_k + int(self.shared_expert)

    def default_width(self, d_model: int) -> int:
        dense = SwigluConfig().default_width(d_model)
        return max(1, round(dense / self.active_experts))

    def build(self, model: ModelConfig) -> MixtureOfExperts:
        return MixtureOfExperts(model, self)

    def _expert_shapes(self, model: ModelConfig) -> list[tuple[int, int]]:
        return SwigluConfig().linear_shapes(model)

    def linear_shapes(self, model: ModelConfig) -> list[tuple[int, int]]:
        """Every expert's projections (the router is dense and counted on its own)."""
        return self._expert_shapes(model) * (self.n_experts + int(self.shared_expert))

    def num_params(self, model: ModelConfig) -> int:
        return super().num_params(model) + model.d_model * self.n_experts

    def flops_per_token(self, model: ModelConfig, seq_len: int) -> int:
        """The projections of the experts a token passes through, and the router's."""
        expert = sum(model.linear.flops_per_token(*s) for s in self._expert_shapes(model))
        return self.active_experts * expert + 6 * model.d_model * self.n_experts

    def hf_unsupported(self, model: ModelConfig) -> str:
        return (
            "Hugging Face Llama/Qwen3 have no mixture-of-experts MLP, and an export to the "
            "Mixtral or OLMoE format is not written"
        )
