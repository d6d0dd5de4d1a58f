"""Lipschitz weight constraints (Newhouse et al. 2025, "Training Transformers with Enforced
Lipschitz Constants"): ``trainer.callbacks: [{name: lipschitz, method: spectral_cap,
max_norm: 1.0}]``.

Unlike the callbacks that only record, this one changes the weights. Right after every optimizer
step (``on_optimizer_step``, before validation, the metrics log and checkpoints see them) each
constrained matrix W is projected so that its spectral norm is at most ``max_norm``:

- ``spectral_normalize``: W <- W * min(1, max_norm / sigma_max), sigma_max estimated by power
  iteration. Its vector (W's top right singular vector) is kept between steps and saved in
  checkpoints, so a resumed run repeats an uninterrupted one exactly; it starts from an exact
  SVD. Each step iterates until the estimate grows by less than 1e-6 of itself (about 10
  iterations per matrix in the tiny runs, whose Adam steps turn the top direction a lot) or
  ``power_iterations`` (default 100). An estimate is never above the true sigma_max, so W can
  end above max_norm by the estimate's error (below 1e-4 in the tests).
- ``spectral_cap``: every singular value above max_norm becomes max_norm and the others stay:
  W <- W - U_k diag(s_k - max_norm) V_k^T over the k singular triples above the cap, from an
  exact SVD (``torch.linalg.svd``). The paper approximates the cap with odd polynomials
  (Newton-Schulz-like matmul iterations), which suit large matrices on accelerators but also
  move singular values near and below the cap; the blocks here are small, an SVD of each costs
  little next to a training step, and it is exact: W changes only along the capped directions.

A matrix already inside the constraint is left untouched (not even rewritten). The constrained
matrices are the blocks' linear layers (``dense``: the weight; ``low_rank``: the product u @ v)
and, with ``head: true``, the output head (the embedding when tied). A low-rank layer is
constrained as the product it computes: spectral_normalize scales both factors by
sqrt(min(1, max_norm / sigma_max(u v))); spectral_cap subtracts the excess from v alone
(v <- v - pinv(u) U_k diag(s_k - max_norm) V_k^T, exact since U_k lies in u's column space).
Under DDP every rank holds the same weights and state, and applies the same projection.

Every ``every`` steps it logs ``lipschitz_bound`` and ``spectral_norm_max`` (exact spectral norms
of the weights after the projection). ``lipschitz_bound`` is the product-of-norms bound of the
blocks' linear maps: the product over the residual branches (each block's attention and mlp) of
1 + the product of the spectral norms of the branch's matrices (attention: the fused qkv
projection, whose norm is at least its value part's, times the output projection). It is an upper bound on the
Lipschitz constant of the residual stream's map only for a network whose nonlinear parts are
1-Lipschitz; here they are not (softmax attention is not globally Lipschitz, RMSNorm divides by
the input's norm and its gains are left out, SwiGLU's gating multiplies two projections), so the
number is the linear maps' part of such a bound, comparable between runs, not a certificate.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from transferlab.config.registry import CALLBACKS
from transferlab.config.schemas import CallbackConfig, RunConfig
from transferlab.models.parts.low_rank import LowRankLinear
from transferlab.objectives.networks import transferred_model
from transferlab.train.engine import Callback, Engine, StepOutput

CONSTRAINED_LINEARS = ("dense", "low_rank")  # linear parts whose matrices can be constrained
BRANCHES = ("attn", "mlp")  # the residual branches of a block
POWER_TOLERANCE = 1e-6  # relative growth of the sigma_max estimate at which iteration stops


@CALLBACKS.register("lipschitz")
class LipschitzConfig(CallbackConfig):
    name: Literal["lipschitz"] = "lipschitz"
    # scale a matrix down to max_norm (power iteration), or cap each singular value (SVD)
    method: Literal["spectral_normalize", "spectral_cap"] = "spectral_normalize"
    max_norm: float = Field(default=1.0, gt=0)  # the most spectral norm a constrained matrix has
    power_iterations: int = Field(default=100, gt=0)  # most per step (spectral_normalize)
    head: bool = False  # also constrain the output head (the embedding when tied)
    every: int = Field(default=10, gt=0)  # steps between logging the bound

    def check(self, run: RunConfig) -> None:
        linear = run.model.linear.name
        if linear not in CONSTRAINED_LINEARS:
            raise ValueError(
                f"the lipschitz callback constrains {' and '.join(CONSTRAINED_LINEARS)} linear "
                f"layers, and model.linear is {linear!r}; use one of those or drop the callback"
            )

    def build(self) -> LipschitzCallback:
        return LipschitzCallback(self)


# ----------------------------------------------------------------------------- matrices
class DenseMatrix:
    """A weight matrix held whole (``nn.Linear``, the output head)."""

    def __init__(self, weight: nn.Parameter) -> None:
        self.weight = weight
        self.device = weight.device

    def matrix(self) -> torch.Tensor:
        return self.weight.detach()

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight.detach() @ x

    def rmatvec(self, y: torch.Tensor) -> torch.Tensor:
        return self.weight.detach().T @ y

    def scale_(self, factor: float) -> None:
        self.weight.data.mul_(factor)

    def subtract_(self, delta: torch.Tensor) -> None:
        self.weight.data.sub_(delta)


class FactoredMatrix:
    """The product ``u @ v`` of a ``low_rank`` layer, constrained through its factors."""

    def __init__(self, u: nn.Parameter, v: nn.Parameter) -> None:
        self.u, self.v = u, v
        self.device = u.device

    def matrix(self) -> torch.Tensor:
        return self.u.detach() @ self.v.detach()

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self.u.detach() @ (self.v.detach() @ x)

    def rmatvec(self, y: torch.Tensor) -> torch.Tensor:
        return self.v.detach().T @ (self.u.detach().T @ y)

    def scale_(self, factor: float) -> None:
        root = factor**0.5  # both factors alike, so neither grows against the other
        self.u.data.mul_(root)
        self.v.data.mul_(root)

    def subtract_(self, delta: torch.Tensor) -> None:
        # delta lies in the column space of u @ v, inside u's: u (v - u^+ delta) = u v - delta.
        self.v.data.sub_(torch.linalg.lstsq(self.u.detach(), delta).solution)


Matrix = DenseMatrix | FactoredMatrix


def as_matrix(module: nn.Module) -> Matrix | None:
    """The constrainable matrix of a linear layer, or None for a module that is none."""
    if isinstance(module, nn.Linear):
        return DenseMatrix(module.weight)
    if isinstance(module, LowRankLinear):
        return FactoredMatrix(module.u, module.v)
    return None


def branch_matrices(model: nn.Module) -> dict[tuple[int, str], dict[str, Matrix]]:
    """(block index, branch) -> the branch's linear layers by qualified name, in order. A matrix
    parameter outside any linear layer that can be constrained is refused, naming it."""
    out: dict[tuple[int, str], dict[str, Matrix]] = {}
    for index, block in enumerate(model.blocks):
        for branch in BRANCHES:
            prefix = f"blocks.{index}.{branch}"
            found, covered = {}, set()
            for name, module in getattr(block, branch).named_modules(prefix=prefix):
                matrix = as_matrix(module)
                if matrix is not None:
                    found[name] = matrix
                    covered |= {id(p) for p in module.parameters()}
            for name, param in getattr(block, branch).named_parameters(prefix=prefix):
                if param.ndim >= 2 and id(param) not in covered:
                    raise ValueError(
                        f"lipschitz: {name} is a matrix outside a dense or low_rank linear "
                        "layer, which the constraint cannot project; drop the callback for this "
                        "model"
                    )
            out[(index, branch)] = found
    return out


# ----------------------------------------------------------------------------- projections
def spectral_norm(matrix: Matrix) -> float:
    return float(torch.linalg.matrix_norm(matrix.matrix(), ord=2))


def power_iteration(
    matrix: Matrix, vector: torch.Tensor, max_iterations: int, tolerance: float = POWER_TOLERANCE
) -> tuple[torch.Tensor, float]:
    """Power iteration on W^T W from the unit ``vector`` until the estimate ||W v|| of sigma_max
    (never above it, and growing with every iteration) grows by less than ``tolerance`` of
    itself, or ``max_iterations``: the new vector and the estimate."""
    sigma = 0.0
    for _ in range(max_iterations):
        product = matrix.matvec(vector)
        estimate = float(torch.linalg.vector_norm(product))
        if estimate - sigma <= tolerance * estimate:  # converged (or W v = 0: nothing to do)
            return vector, estimate
        sigma = estimate
        vector = F.normalize(matrix.rmatvec(product), dim=0)
    return vector, float(torch.linalg.vector_norm(matrix.matvec(vector)))


def top_right_singular_vector(matrix: Matrix) -> torch.Tensor:
    return torch.linalg.svd(matrix.matrix(), full_matrices=False).Vh[0]


def spectral_normalize_(matrix: Matrix, sigma: float, max_norm: float) -> None:
    """W <- W * min(1, max_norm / sigma), leaving W alone when it is inside already."""
    if sigma > max_norm:
        matrix.scale_(max_norm / sigma)


def spectral_cap_(matrix: Matrix, max_norm: float) -> None:
    """Set every singular value above ``max_norm`` to ``max_norm``, the others unchanged."""
    u, s, vh = torch.linalg.svd(matrix.matrix(), full_matrices=False)
    above = int((s > max_norm).sum())  # s is sorted, largest first
    if above:
        excess = (u[:, :above] * (s[:above] - max_norm)) @ vh[:above]
        matrix.subtract_(excess)


def lipschitz_bound(norms: dict[tuple[int, str], list[float]]) -> float:
    """Product over residual branches of 1 + the product of the branch's spectral norms."""
    bound = 1.0
    for branch_norms in norms.values():
        bound *= 1.0 + math.prod(branch_norms)
    return bound


# ----------------------------------------------------------------------------- callback
class LipschitzCallback(Callback):
    name = "lipschitz"

    def __init__(self, cfg: LipschitzConfig) -> None:
        self.cfg = cfg
        self.vectors: dict[str, torch.Tensor] = {}  # spectral_normalize: power-iteration state
        self._branches: dict[tuple[int, str], dict[str, Matrix]] = {}
        self._matrices: dict[str, Matrix] = {}

    def on_train_start(self, engine: Engine) -> None:
        model = transferred_model(engine.model)  # not the objective's own networks (electra's)
        self._branches = branch_matrices(model)
        self._matrices = {name: m for found in self._branches.values() for name, m in found.items()}
        if self.cfg.head:
            self._matrices["head"] = DenseMatrix(model.output_weight)

    @torch.no_grad()
    def on_optimizer_step(self, engine: Engine) -> None:
        for name, matrix in self._matrices.items():
            if self.cfg.method == "spectral_cap":
                spectral_cap_(matrix, self.cfg.max_norm)
                continue
            vector = self.vectors.get(name)
            if vector is None:
                vector = top_right_singular_vector(matrix)
            vector = vector.to(matrix.device)  # a checkpoint's state loads on the CPU
            vector, sigma = power_iteration(matrix, vector, self.cfg.power_iterations)
            self.vectors[name] = vector
            spectral_normalize_(matrix, sigma, self.cfg.max_norm)

    @torch.no_grad()
    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if engine.step % self.cfg.every:
            return
        norms = {name: spectral_norm(matrix) for name, matrix in self._matrices.items()}
        branches = {key: [norms[name] for name in found] for key, found in self._branches.items()}
        engine.row["lipschitz_bound"] = lipschitz_bound(branches)
        engine.row["spectral_norm_max"] = max(norms.values())

    def state_dict(self) -> dict[str, Any]:
        return {"vectors": dict(self.vectors)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.vectors = dict(state.get("vectors", {}))
