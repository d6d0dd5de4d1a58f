"""Generation tokens/s with the key/value cache against recomputing the sequence, on CPU.

    python benchmarks/generate_throughput.py --presets micro,tiny --new-tokens 16,64,192

A model of each preset with fresh weights (speed does not depend on them) generates greedily
from ``--prompts`` prompts of ``--prompt-len`` random tokens, without ``<eos>`` so every row uses
its whole budget; ``generate(use_cache=True)`` and ``generate(use_cache=False)`` alternate
repeat by repeat and each reports its best repeat. Both must produce the same tokens (that
guards that they do the same work). Prints the load average, then one line per (preset, length):
    generate preset=P new_tokens=N cached_tok_per_s=X recomputed_tok_per_s=Y speedup=X/Y
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from transferlab.config import ModelConfig
from transferlab.evaluate.generate import generate
from transferlab.models import build_model


def seconds(model: torch.nn.Module, prompts: list[list[int]], n: int, cache: bool) -> float:
    start = time.perf_counter()
    generate(model, prompts, n, batch_size=len(prompts), use_cache=cache)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="micro,tiny")
    parser.add_argument("--new-tokens", default="16,64,192", help="comma-separated budgets")
    parser.add_argument("--prompts", type=int, default=16, help="prompts, all in one batch")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# load average {os.getloadavg()[0]:.2f}, torch threads {args.threads}")
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        model = build_model(ModelConfig(preset=preset, vocab_size=args.vocab)).eval()
        prompts = torch.randint(3, args.vocab, (args.prompts, args.prompt_len)).tolist()
        for n in (int(x) for x in args.new_tokens.split(",")):
            same = generate(model, prompts, n, use_cache=True) == generate(
                model, prompts, n, use_cache=False
            )
            if not same:
                raise SystemExit(f"cached and recomputed tokens differ ({preset}, {n})")
            times = {True: [], False: []}
            for _ in range(args.repeats):
                for cache in (True, False):
                    times[cache].append(seconds(model, prompts, n, cache))
            tokens = args.prompts * n
            cached, recomputed = tokens / min(times[True]), tokens / min(times[False])
            print(
                f"generate preset={preset} new_tokens={n} cached_tok_per_s={cached:.0f} "
                f"recomputed_tok_per_s={recomputed:.0f} speedup={cached / recomputed:.2f}"
            )


if __name__ == "__main__":
    main()
