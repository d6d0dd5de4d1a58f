"""Training throughput and optimizer-state size of each optimizer against dense AdamW on CPU.

    python benchmarks/optimizer_throughput.py --presets micro,small --threads 2
    python benchmarks/optimizer_throughput.py --quick      # a few seconds: does it run

On one model shape per preset, copies of the same weights train through the engine's step
(``Engine.train_step`` with the clm objective, what ``transferlab train`` runs; fp32, eager) on
the same random token batches, one trainee per optimizer as the registry builds it:
  adamw          the default: fused AdamW over the shared parameter groups;
  muon           torch.optim.Muon on the hidden matrices (5 Newton-Schulz steps), fused AdamW
                 for the rest;
  galore         GaLore at ``--galore-rank`` (default d_model / 4, the paper's ratio), its
                 projector refreshed every ``--galore-gap`` steps: outside the timed steps, so
                 this is the step between refreshes;
  galore-refresh the same with a refresh (an SVD per hidden matrix) on every step: its extra
                 time over ``galore``, divided by the gap, is what refreshing adds to an average
                 step (the ``# amortized`` line).
They take turns on each batch in rotating order. tokens/s comes from a trainee's fastest step,
as timeit reports (other load on a shared machine only ever slows a step down); the ratio to
adamw is the median over batches of the two step times measured back to back, so a slow drift
of the machine's load cancels. State bytes are ``optimizer_state_bytes`` after the first step.

Ends with one line per preset and optimizer:
    PRESET optimizer=NAME tokens_per_s=X vs_adamw=R state_bytes=B state_vs_adamw=S
with R = tokens/s over adamw's (above 1: faster) and S = state bytes over adamw's.
"""

from __future__ import annotations

import argparse
import os

import torch

from train_throughput import Trainee, engine_trainee, time_interleaved
from transferlab.config import OPTIMIZERS, ModelConfig
from transferlab.models import build_model, count_parameters
from transferlab.optim import optimizer_state_bytes


def optimizer_specs(cfg: ModelConfig, args: argparse.Namespace) -> dict[str, dict]:
    rank = args.galore_rank or cfg.d_model // 4
    galore = {"name": "galore", "lr": args.lr, "rank": rank, "update_proj_gap": args.galore_gap}
    return {
        "adamw": {"name": "adamw", "lr": args.lr},
        "muon": {"name": "muon", "lr": args.lr},
        "galore": galore,
        "galore-refresh": {**galore, "update_proj_gap": 1},
    }


def make_trainees(cfg: ModelConfig, args: argparse.Namespace) -> dict[str, Trainee]:
    torch.manual_seed(0)
    weights = build_model(cfg).state_dict()
    trainees = {}
    for name, spec in optimizer_specs(cfg, args).items():
        model = build_model(cfg)
        model.load_state_dict(weights)
        optimizer = OPTIMIZERS.parse(spec).build(model)
        trainees[name] = engine_trainee(model, optimizer, args.batch_size)
    return trainees


def bench_preset(name: str, args: argparse.Namespace) -> list[str]:
    cfg = ModelConfig(preset=name, vocab_size=args.vocab, max_seq_len=args.seq_len)
    trainees = make_trainees(cfg, args)
    gen = torch.Generator().manual_seed(1)

    def batch() -> torch.Tensor:
        return torch.randint(0, args.vocab, (args.batch_size, args.seq_len + 1), generator=gen)

    # The warmup's first step creates every state (and galore's first projector); galore's
    # state size does not change after it (the projector is refreshed in place).
    first_losses = time_interleaved(trainees, batch, args.warmup, args.steps)
    state_bytes = {key: optimizer_state_bytes(t.optimizer) for key, t in trainees.items()}

    tokens_per_step = args.batch_size * args.seq_len
    adamw = trainees["adamw"]
    refresh = trainees["galore-refresh"].speedup_over(trainees["galore"])  # < 1: slower
    gap = optimizer_specs(cfg, args)["galore"]["update_proj_gap"]
    print(
        f"# {name}: non-embedding params {count_parameters(cfg).non_embedding:,}; first losses "
        "(same weights) " + " / ".join(f"{loss:.4f}" for loss in first_losses),
        flush=True,
    )
    print(
        f"# {name}: amortized, refreshing every {gap} steps adds "
        f"{(1 / refresh - 1) / gap:.2%} to galore's step time (a refresh step takes "
        f"{1 / refresh:.2f}x a plain one)",
        flush=True,
    )
    return [
        f"{name} optimizer={key} tokens_per_s={trainee.tokens_per_s(tokens_per_step):.0f} "
        f"vs_adamw={trainee.speedup_over(adamw):.2f} state_bytes={state_bytes[key]} "
        f"state_vs_adamw={state_bytes[key] / state_bytes['adamw']:.3f}"
        for key, trainee in trainees.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="micro,small", help="comma-separated names")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per optimizer")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per optimizer (>= 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=8192, help="the default tokenizer size")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--galore-rank", type=int, default=None, help="default: d_model / 4")
    parser.add_argument("--galore-gap", type=int, default=200, help="GaLore's update_proj_gap")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--quick", action="store_true", help="nano preset, 2 timed steps of 2 x 32 tokens"
    )
    args = parser.parse_args()
    if args.quick:
        args.presets, args.steps, args.warmup = "nano", 2, 1
        args.batch_size, args.seq_len, args.vocab = 2, 32, 512
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    torch.set_num_threads(args.threads)
    print(
        f"# torch {torch.__version__}, {args.threads} threads, batch {args.batch_size} x "
        f"{args.seq_len} tokens, vocab {args.vocab}, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    lines = [line for name in args.presets.split(",") for line in bench_preset(name, args)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
