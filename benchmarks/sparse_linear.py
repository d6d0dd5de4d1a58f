"""How the sparse_low_rank layer should compute: forward + backward time of its composed dense
weight against torch.sparse for S, and against a dense layer of the same shape.

    python benchmarks/sparse_linear.py --threads 2

For each projection shape of the tiny and small presets and two token counts, four ways to
compute ``y = x @ W.T`` with ``W = scale * B A + S`` (or a dense W) and its gradients:
  dense     ``nn.Linear`` without bias (the reference);
  composed  ``SparseLowRankLinear``: W composed densely, one matmul (what the part runs);
  csr       ``scale * (x @ A.T) @ B.T + (S_csr @ x.T).T``, S a torch.sparse CSR tensor built
            from the values each step (autograd to the values through the CSR constructor);
  coo       the same with a sparse COO tensor and ``torch.sparse.mm``.
The three sparse ways are checked to agree (output and every gradient) before they are timed.
Each time is the fastest of ``--reps`` rounds in which the four take turns; the ratios are
against dense.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.models.parts.sparse_low_rank import SparseLowRankConfig, SparseLowRankLinear

# (in, out) of qkv, gate_up and down at d_model 128 (tiny) and 256 (small).
SHAPES = [(128, 384), (128, 704), (352, 128), (256, 768), (256, 1376), (688, 256)]


def csr_forward(layer: SparseLowRankLinear, x: torch.Tensor) -> torch.Tensor:
    rows = (layer.support // layer.in_features).long()
    crow = torch.zeros(layer.out_features + 1, dtype=torch.int64)
    crow[1:] = torch.bincount(rows, minlength=layer.out_features).cumsum(0)
    cols = (layer.support % layer.in_features).long()
    s = torch.sparse_csr_tensor(crow, cols, layer.values, (layer.out_features, layer.in_features))
    return low_rank_part(layer, x) + (s @ x.T).T


def coo_forward(layer: SparseLowRankLinear, x: torch.Tensor) -> torch.Tensor:
    support = layer.support.long()
    indices = torch.stack([support // layer.in_features, support % layer.in_features])
    shape = (layer.out_features, layer.in_features)
    s = torch.sparse_coo_tensor(indices, layer.values, shape, is_coalesced=True)
    return low_rank_part(layer, x) + torch.sparse.mm(s, x.T).T


def low_rank_part(layer: SparseLowRankLinear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(F.linear(x, layer.a), layer.b) * layer.scale


def fastest(steps: dict[str, Callable[[], None]], reps: int) -> dict[str, float]:
    """The fastest time of each step over ``reps`` rounds, the steps taking turns in each round
    (so a change of the machine's load hits them alike)."""
    for step in steps.values():
        step()  # warm the kernels
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(reps):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def gradients(
    module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> list[torch.Tensor]:
    """The output and the gradients of the input and of every parameter, for a fixed upstream."""
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    y = forward(x)
    y.backward(torch.ones_like(y))
    return [y.detach(), x.grad, *(p.grad for p in module.parameters())]


def bench(n_in: int, n_out: int, tokens: int, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    part = SparseLowRankConfig(rank=args.rank, density=args.density)
    layer = part.build(n_in, n_out)
    layer.init_weights(0.02)
    with torch.no_grad():
        layer.b.normal_(0, 0.02)  # B starts at 0; a non-zero B makes every product count
    dense = nn.Linear(n_in, n_out, bias=False)
    x = torch.randn(tokens, n_in)  # [tokens, in]: the sparse products take 2-D inputs
    ways = {
        "composed": layer,
        "csr": lambda t: csr_forward(layer, t),
        "coo": lambda t: coo_forward(layer, t),
    }
    reference = gradients(layer, layer, x)
    for name in ("csr", "coo"):
        for ours, theirs in zip(reference, gradients(layer, ways[name], x), strict=True):
            torch.testing.assert_close(
                theirs, ours, rtol=1e-3, atol=1e-4, msg=lambda m, way=name: f"{way}: {m}"
            )

    def step(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
        def run() -> None:
            module.zero_grad(set_to_none=True)
            forward(x.requires_grad_()).sum().backward()

        return run

    steps = {"dense": step(dense, dense)}
    steps |= {name: step(layer, forward) for name, forward in ways.items()}
    return fastest(steps, args.reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--density", type=float, default=0.03)
    parser.add_argument("--tokens", default="1024,4096", help="comma-separated tokens per step")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # beta-state notices
    print(
        f"# torch {torch.__version__}, {args.threads} threads, rank {args.rank}, "
        f"density {args.density}; fastest of {args.reps} rounds of forward + backward"
    )
    print("| in x out | tokens | dense ms | composed | csr | coo |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n_in, n_out in SHAPES:
        for tokens in map(int, args.tokens.split(",")):
            t = bench(n_in, n_out, tokens, args)
            ratios = " | ".join(f"{t[k] / t['dense']:.2f}" for k in ("composed", "csr", "coo"))
            print(
                f"| {n_in} x {n_out} | {tokens} | {t['dense'] * 1e3:.2f} | {ratios} |", flush=True
            )


if __name__ == "__main__":
    main()
