"""Training step time and page faults with glibc's default malloc thresholds and with the
engine's (``train/allocator.py``), on a small model where allocation is a large share of a step.

Each setting runs in its own process (a threshold, once set, cannot be unset), with the same
model, batch and optimizer; the engine's step path is what ``Engine`` runs (forward, loss,
backward, fused AdamW). Prints one line per setting and the ratio.

    .venv/bin/python benchmarks/allocator.py --threads 1
    .venv/bin/python benchmarks/allocator.py --threads 2 --d-model 128 --batch 256
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time


def measure(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    from transferlab.config import ModelConfig
    from transferlab.models import build_model
    from transferlab.train.allocator import keep_freed_memory

    torch.set_num_threads(args.threads)
    if args.setting == "engine":
        assert keep_freed_memory(), "mallopt is not available here (not glibc)"
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=args.vocab, d_model=args.d_model, n_layers=args.layers, n_heads=4)
    model = build_model(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, fused=True)
    inputs = torch.randint(0, args.vocab, (args.batch, args.seq_len))
    targets = torch.randint(0, args.vocab, (args.batch, args.seq_len))

    def step() -> None:
        logits = model(inputs)
        F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(10):
        step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    faults = (after.ru_minflt - before.ru_minflt) / args.steps
    system = after.ru_stime - before.ru_stime
    print(f"{args.setting} {seconds / args.steps * 1e3:.2f} {faults:.0f} {system:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=38)
    parser.add_argument("--batch", type=int, default=480)
    parser.add_argument("--seq-len", type=int, default=6)
    parser.add_argument("--setting", choices=["glibc", "engine"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setting:
        measure(args)
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    results = {}
    for setting in ("glibc", "engine"):
        out = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--setting", setting],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        results[setting] = float(out[1])
        print(f"{setting:>6}: {out[1]} ms/step, {out[2]} minor page faults/step, {out[3]} s system")
    print(f"engine / glibc step time: {results['engine'] / results['glibc']:.2f}")


if __name__ == "__main__":
    main()
