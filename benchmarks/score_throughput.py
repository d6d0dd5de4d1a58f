"""Multiple-choice scoring throughput of ``qa_score`` against lm-evaluation-harness on CPU.

Needs lm-evaluation-harness, a benchmark-only dependency (not in pyproject):

    pip install lm-eval
    python benchmarks/score_throughput.py --preset micro --people 200 --examples 600 --threads 2

A bios world, its tokenizer and a model with fresh weights (throughput does not depend on the
weights) are built in a temporary cache. The items are those of the ``qa_score`` task, built by
its own ``build_requests``: one example is a question with all its choices. Both sides score
exactly these items:
  ours     ``score_choices(model, requests, batch_size)`` on the token ids, as the task does;
  lm-eval  ``HFLM(pretrained=<our HF export>).loglikelihood`` on one ``Instance`` per
           (context, choice), the strings being our token ids decoded. The context text starts
           with ``<bos>``, so HFLM runs with ``add_bos_token=False`` and both score the same
           token sequences (checked: every pair HFLM tokenizes is compared with ours).
The summed log-probabilities of every choice must agree within ``--tolerance``; that guards that
both do the same work. Both run with the same torch threads and the same batch size (sequences
per forward), alternate repeat by repeat, and report their best repeat; model loading and export
are not timed, HFLM's string tokenization is (it is part of its ``loglikelihood`` call).
HFLM keeps its default logits cache: choices of one context that differ only in their last token
share one forward, so it runs fewer sequences than we do (the header line says how many).

Threads: with more torch threads than idle cores, every small op waits for a descheduled
thread. At load 4.5 on 2 cores one forward of the micro model took 20 ms with 1 thread and
850 ms with 2, and the ratio then measures op counts, not work; the header prints the load
average, and on a busy machine ``--threads 1`` is the comparison to trust.

Prints one line per batch size:
    score batch=B ours_examples_per_s=X lm_eval_examples_per_s=Y ratio=R max_logprob_diff=D
        n_examples=N
with R = X / Y, then a summary line. A ``#`` line per batch size gives lm-eval's rate when it is
handed the token ids directly (its ``_loglikelihood_tokens``), which separates tokenization from
the forward passes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from transferlab.config import ModelConfig, RunConfig
from transferlab.data.prepare import prepare_data
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.qa_score import ChoiceExample, QaScoreConfig, build_requests
from transferlab.evaluate.score import score_choices
from transferlab.models import build_model, count_parameters
from transferlab.models.hf_export import export_llama
from transferlab.models.transformer import Transformer

try:
    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
except ImportError:
    sys.exit("lm_eval is not installed; run `pip install lm-eval` (a benchmark-only dependency)")

Pair = tuple[list[int], list[int]]  # (context ids, choice ids): one scored sequence


@dataclass
class Setup:
    """The model under test, its tokenizer file and the items both sides score."""

    model: Transformer
    tokenizer: TextTokenizer
    tokenizer_file: Path
    examples: list[ChoiceExample]


def build_setup(args: argparse.Namespace) -> Setup:
    """World, tokenizer and untrained model of ``--preset``; the first ``--examples`` items."""
    cfg = RunConfig(
        world={"name": "bios", "num_people": args.people},
        model=ModelConfig(preset=args.preset),
    )
    data = prepare_data(cfg)
    tokenizer = data.tokenizer()
    torch.manual_seed(0)
    model = build_model(cfg.model.model_copy(update={"vocab_size": data.vocab_size})).eval()
    task = QaScoreConfig(n_choices=args.choices, n_shots=args.shots, eval_splits=["train", "test"])
    examples = build_requests(task, cfg.world.build(), tokenizer, seed=0)[: args.examples]
    return Setup(model, tokenizer, data.tokenizer_path, examples)


def pairs_of(examples: list[ChoiceExample]) -> list[Pair]:
    """Every (context, choice) sequence, example by example, choice by choice."""
    return [(list(ex.request[0]), list(choice)) for ex in examples for choice in ex.request[1]]


def distinct_forwards(examples: list[ChoiceExample]) -> int:
    """Sequences lm-eval actually runs: HFLM groups pairs by context + all but the last choice
    token, so single-token choices of one context cost one forward."""
    return len({(*context, *choice[:-1]) for context, choice in pairs_of(examples)})


def instances_of(pairs: list[Pair], tokenizer: TextTokenizer) -> list[Instance]:
    """lm-eval requests: our ids decoded back to (context, continuation) strings."""
    return [
        Instance(
            request_type="loglikelihood",
            doc={},
            arguments=(tokenizer.decode(context), tokenizer.decode(choice)),
            idx=i,
        )
        for i, (context, choice) in enumerate(pairs)
    ]


def load_hflm(export_dir: Path, batch_size: int, threads: int) -> HFLM:
    lm = HFLM(
        pretrained=str(export_dir),
        device="cpu",
        dtype="float32",
        batch_size=batch_size,
        add_bos_token=False,  # the context text already starts with <bos>
    )
    torch.set_num_threads(threads)  # in case loading changed it
    return lm


def tokenized_unlike_ours(lm: HFLM, instances: list[Instance], pairs: list[Pair]) -> list[bool]:
    """Per pair, whether HFLM's tokenization differs from our ids (it then scores other tokens)."""
    return [
        tuple(lm._encode_pair(*inst.args)) != (context, choice)  # what loglikelihood calls
        for inst, (context, choice) in zip(instances, pairs, strict=True)
    ]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_batch_size(
    setup: Setup, export_dir: Path, batch_size: int, args: argparse.Namespace
) -> tuple[float, float]:
    """Times both sides at ``batch_size``; prints its line; returns (ratio, max logprob diff)."""
    requests = [ex.request for ex in setup.examples]
    pairs = pairs_of(setup.examples)
    lm = load_hflm(export_dir, batch_size, args.threads)
    instances = instances_of(pairs, setup.tokenizer)
    unlike = tokenized_unlike_ours(lm, instances, pairs)
    if any(unlike[: args.check_sample * args.choices]):
        sys.exit(
            f"HFLM tokenizes some of the first {args.check_sample} examples unlike ours; "
            "check the exported tokenizer and HFLM's add_bos_token"
        )
    encoded = [
        (inst.args, context, choice)
        for inst, (context, choice) in zip(instances, pairs, strict=True)
    ]
    pad = setup.tokenizer.special.pad

    runs: dict[str, Callable[[], Any]] = {
        "ours": lambda: score_choices(setup.model, requests, batch_size, pad),
        "lm_eval": lambda: lm.loglikelihood(instances, disable_tqdm=True),
        "lm_eval_tokens": lambda: lm._loglikelihood_tokens(encoded, disable_tqdm=True),
    }
    seconds = {name: float("inf") for name in runs}
    results = {}
    order = list(runs)
    for _ in range(args.repeats):  # alternate, so bursts of other load hit every side
        for name in order:
            elapsed, results[name] = timed(runs[name])
            seconds[name] = min(seconds[name], elapsed)
        order = order[1:] + order[:1]  # rotate, so none always runs right after another

    ours = [logprob for choices in results["ours"] for logprob in choices]
    theirs = [logprob for logprob, _greedy in results["lm_eval"]]
    max_diff = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    n = len(setup.examples)
    rates = {name: n / elapsed for name, elapsed in seconds.items()}
    ratio = rates["ours"] / rates["lm_eval"]
    print(
        f"# batch={batch_size}: token_mismatches={sum(unlike)}/{len(pairs)}; lm-eval on token ids "
        f"{rates['lm_eval_tokens']:.1f} examples/s (ours / that = "
        f"{rates['ours'] / rates['lm_eval_tokens']:.2f})",
        flush=True,
    )
    print(
        f"score batch={batch_size} ours_examples_per_s={rates['ours']:.1f} "
        f"lm_eval_examples_per_s={rates['lm_eval']:.1f} ratio={ratio:.2f} "
        f"max_logprob_diff={max_diff:.2e} n_examples={n}",
        flush=True,
    )
    if max_diff > args.tolerance:
        sys.exit(
            f"log-probabilities differ by {max_diff:.2e} > --tolerance {args.tolerance}; "
            "the two sides did not score the same sequences"
        )
    return ratio, max_diff


def quiet_libraries() -> None:
    """lm-eval and transformers log warnings per call that say nothing about this benchmark."""
    for name in ("lm_eval", "lm-eval", "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(size) for size in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every batch size must be at least 1")
    return sizes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="micro", help="model preset (nano, micro, tiny ...)")
    parser.add_argument("--people", type=int, default=200, help="people in the bios world")
    parser.add_argument("--examples", type=int, default=600, help="questions scored")
    parser.add_argument("--choices", type=int, default=8, help="choices per question")
    parser.add_argument("--shots", type=int, default=0, help="few-shot lines in each context")
    parser.add_argument(
        "--batch-sizes", type=batch_sizes, default="16,64", help="comma-separated, sequences"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; best kept")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both sides")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="max logprob difference")
    parser.add_argument(
        "--check-sample", type=int, default=20, help="examples whose tokenization must match"
    )
    args = parser.parse_args()
    if args.examples < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--examples, --repeats and --threads must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    quiet_libraries()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp:
        # A private cache: the benchmark neither reads nor fills the user's artifact cache.
        os.environ["TRANSFERLAB_CACHE"] = str(Path(tmp) / "cache")
        setup = build_setup(args)
        export_dir = export_llama(setup.model, setup.tokenizer_file, Path(tmp) / "hf")
        lengths = [len(context) + len(choice) for context, choice in pairs_of(setup.examples)]
        print(
            f"# torch {torch.__version__}, lm_eval {lm_eval.__version__}, threads={args.threads}, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
            f"preset {args.preset} ({count_parameters(setup.model.config).total:,} params, "
            f"vocab {setup.tokenizer.vocab_size}); {len(setup.examples)} examples x {args.choices} "
            f"choices = {len(lengths)} sequences of {sum(lengths) / len(lengths):.1f} tokens "
            f"on average ({min(lengths)}-{max(lengths)}), {args.shots} shots; lm-eval runs "
            f"{distinct_forwards(setup.examples)} of them (its logits cache shares one forward "
            "among choices that differ only in their last token)",
            flush=True,
        )
        outcomes = [
            bench_batch_size(setup, export_dir, int(size), args) for size in args.batch_sizes
        ]
    ratios = [ratio for ratio, _ in outcomes]
    print(
        f"summary: ours/lm-eval examples/s ratio {min(ratios):.2f}-{max(ratios):.2f} over batch "
        f"sizes {','.join(map(str, args.batch_sizes))}; max_logprob_diff={max(d for _, d in outcomes):.2e}; "
        f"n_examples={len(setup.examples)}"
    )


if __name__ == "__main__":
    main()
