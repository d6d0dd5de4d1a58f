"""What a CUDA GPU gives the project: its CUDA tests, then training tokens/s and model FLOP
utilisation (MFU) of the ~125M-parameter ``base125m`` preset in bf16.

    bash benchmarks/gpu.sh                                   # the same as python benchmarks/gpu.py
    python benchmarks/gpu.py --batch-size 32 --compile --peak 989

1. ``pytest -m cuda tests/``: the tests that need a CUDA GPU (bf16 autocast training, NCCL + DDP
   in one torchrun process, the fused AdamW step), skipped everywhere else.
2. The training engine's step (``Engine.train_step``, what ``transferlab train`` runs: clm
   objective, bf16 autocast, the project's fused AdamW) on random token batches, timed after
   warm-up; tokens/s from the fastest step, as the other benchmarks here.
3. MFU = tokens/s x ``flops_per_token`` (PaLM-style 6N + 12 L d T, attention counted over the
   full T x T matrix) / the GPU's dense bf16 peak, from ``BF16_PEAK_TFLOPS`` by device name or
   ``--peak``.

Prints one line per figure (``cuda_tests``, ``gpu``, then ``PRESET params=``, ``tokens_per_s=``,
``model_tflops=``, ``mfu=``, ``peak_memory_gib=``). Without a CUDA device it prints one line
saying so and exits 0: the project never needs a GPU.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import torch

from train_throughput import engine_trainee, time_interleaved  # this folder: run as a script
from transferlab.config import OPTIMIZERS, ModelConfig
from transferlab.models import build_model, count_parameters, flops_per_token

REPO = Path(__file__).resolve().parent.parent

# Dense (no sparsity) bf16 tensor-core peaks from the vendor's datasheets, matched in order
# against torch.cuda.get_device_name(): a variant comes before the family name it contains.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),  # SXM, and GH200
    ("A100", 312.0),  # SXM and PCIe
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of the GPU called ``device_name``; None when the table lacks it."""
    for fragment, peak in BF16_PEAK_TFLOPS:
        if fragment.lower() in device_name.lower():
            return peak
    return None


def model_flop_utilisation(tokens_per_s: float, flops_per_token: int, peak: float) -> float:
    """Achieved model FLOP/s over the peak (``peak`` in TFLOP/s)."""
    return tokens_per_s * flops_per_token / (peak * 1e12)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base125m", help="a model preset")
    parser.add_argument("--vocab", type=int, default=50_304, help="GPT-2's, padded to 64")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per step")
    parser.add_argument("--micro-batch-size", type=int, default=None, help="default: the batch")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (>= 1)")
    parser.add_argument("--compile", action="store_true", help="train through torch.compile")
    parser.add_argument("--peak", type=float, default=None, help="the GPU's bf16 TFLOP/s")
    parser.add_argument("--skip-tests", action="store_true", help="measure only")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if args.peak is not None and args.peak <= 0:
        parser.error(f"--peak {args.peak}: expected the GPU's bf16 peak in TFLOP/s (> 0)")
    micro = args.micro_batch_size or args.batch_size
    if micro < 1 or args.batch_size % micro:
        parser.error(f"--micro-batch-size {micro} must divide --batch-size {args.batch_size}")
    return args


def run_cuda_tests() -> bool:
    """``pytest -m cuda`` over the test suite; prints its counts, and its output if it failed."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]
    done = subprocess.run(command + ["tests"], cwd=REPO, capture_output=True, text=True)
    counts = dict.fromkeys(("passed", "failed", "skipped", "errors"), 0)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary):
        counts["errors" if word.startswith("error") else word] = int(number)
    print("cuda_tests " + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    ok = done.returncode == 0 and counts["passed"] > 0
    if not ok:
        for line in (done.stdout + done.stderr).splitlines()[-60:]:
            print(f"# {line}")
    return ok


def measure(args: argparse.Namespace, peak: float) -> None:
    """Time the engine's bf16 step of the preset on cuda:0; print one line per figure."""
    device = torch.device("cuda")
    cfg = ModelConfig(preset=args.preset, vocab_size=args.vocab, max_seq_len=args.seq_len)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    optimizer = OPTIMIZERS.parse({"name": "adamw", "lr": 1e-4}).build(model)
    trainee = engine_trainee(
        model, optimizer, args.batch_size, args.micro_batch_size, device, "bf16", args.compile
    )
    gen = torch.Generator().manual_seed(1)

    def batch() -> torch.Tensor:  # on the host, as the data loader gives it
        return torch.randint(4, args.vocab, (args.batch_size, args.seq_len + 1), generator=gen)

    torch.cuda.reset_peak_memory_stats(device)
    time_interleaved({"engine": trainee}, batch, args.warmup, args.steps)
    tokens_per_s = trainee.tokens_per_s(args.batch_size * args.seq_len)
    per_token = flops_per_token(cfg, args.seq_len)
    name = args.preset
    print(f"{name} params={count_parameters(cfg).total}", flush=True)
    print(f"{name} tokens_per_s={tokens_per_s:.0f}")
    print(f"{name} model_tflops={tokens_per_s * per_token / 1e12:.1f}")
    print(f"{name} mfu={model_flop_utilisation(tokens_per_s, per_token, peak):.3f}")
    print(f"{name} peak_memory_gib={torch.cuda.max_memory_allocated(device) / 2**30:.1f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device found (torch.cuda.is_available() is False): nothing to measure")
        return 0
    name = torch.cuda.get_device_name(0)
    peak = args.peak or peak_tflops(name)
    if peak is None:
        print(f"no bf16 peak known for GPU {name!r}; pass --peak TFLOPS (its dense bf16 peak)")
        return 2
    source = "--peak" if args.peak else "table"
    print(f"gpu name={name!r} bf16_peak_tflops={peak:g} source={source} torch={torch.__version__}")
    tests_ok = args.skip_tests or run_cuda_tests()
    measure(args, peak)
    return 0 if tests_ok else 1


if __name__ == "__main__":
    sys.exit(main())
