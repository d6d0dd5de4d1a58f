"""Training throughput of our Transformer on CPU, against the machine's matmul peak and against a
transformers ``LlamaForCausalLM`` of the same shape trained in the same process.

    python benchmarks/train_throughput.py --presets tiny,small,medium --threads 2

Four trainees start from the same weights (ours, copied into transformers with the mapping
``hf_export`` uses) and train in fp32 eager mode (no torch.compile for any) with the same AdamW
(the project's ``adamw`` optimizer: decay and no-decay groups) on the same random token batches:
  ours          the training path: ``model(inputs, output="features")``, whose loss goes
                through ``linear_cross_entropy`` (chunked, never materializes the logits);
  engine        ours through the training engine's step (``Engine.train_step`` with the clm
                objective: the batch dict, micro-batch slicing, loss sums, the schedule), what
                ``transferlab train`` runs;
  ours-logits   ``F.cross_entropy(model(inputs), targets)``, the logits path;
  transformers  ``F.cross_entropy(llama(input_ids=inputs).logits, targets)``, what
                ``LlamaForCausalLM`` does with ``labels``.
The four take turns on each batch (in rotating order). tokens/s comes from a trainee's fastest
step, as timeit reports (other load on a shared machine only ever slows a step down); the ratio
to transformers is the median over batches of the two step times measured back to back, so a
slow drift of the machine's load cancels. FLOPs per token follow ``flops_per_token``
(PaLM-style 6N + 12 L d T; attention is counted over the full L x L matrix although causal
attention needs half of it).

Ends with one line per preset:
    PRESET params=N tokens_per_s=X vs_transformers=R engine_vs_transformers=E peak_fraction=F
with N the non-embedding parameters, X our tokens/s, R ours / transformers tokens/s, E the same
through the engine, and F our achieved FLOP/s over the measured fp32 matmul peak. The lines starting with # before it give
the logits path's ratio as well.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from transferlab.config import OPTIMIZERS, ModelConfig
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.models import build_model, count_parameters, flops_per_token, linear_cross_entropy
from transferlab.models.hf_export import hf_config, hf_state_dict
from transferlab.objectives import ClmConfig
from transferlab.train.batching import BatchPlan
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Engine, LoopSettings

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def matmul_peak_flops(sizes: tuple[int, ...] = (1024, 1536, 2048), reps: int = 5) -> float:
    """Best fp32 FLOP/s of ``torch.mm`` on square matrices (2 n^3 FLOPs per product)."""
    best = 0.0
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        torch.mm(a, b)  # warm the kernel and the caches
        for _ in range(reps):
            start = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


@dataclass
class Trainee:
    """A model's loss function and optimizer; ``step`` runs forward, backward and the update."""

    loss: LossFn
    optimizer: torch.optim.Optimizer
    step_seconds: list[float] = field(default_factory=list)

    def step(self, batch: torch.Tensor) -> float:
        loss = self.loss(batch[:, :-1], batch[:, 1:])
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def timed_step(self, batch: torch.Tensor) -> None:
        start = time.perf_counter()
        self.step(batch)
        self.step_seconds.append(time.perf_counter() - start)

    def tokens_per_s(self, tokens_per_step: int) -> float:
        # The fastest step, as timeit reports: other load on the machine only ever slows a step.
        return tokens_per_step / min(self.step_seconds)

    def speedup_over(self, other: Trainee) -> float:
        """Median over steps of other's time / our time for the same batch, timed back to back."""
        pairs = zip(other.step_seconds, self.step_seconds, strict=True)
        return statistics.median(theirs / ours for theirs, ours in pairs)


class OneBatch:
    """A batch source that yields whatever batch the benchmark gives it next."""

    def __init__(self) -> None:
        self.batch: torch.Tensor | None = None

    def global_batch(self) -> torch.Tensor:
        return self.batch

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class EngineTrainee(Trainee):
    """The engine's own step on the batch (the objective shifts it into inputs and targets)."""

    def __init__(self, engine: Engine, source: OneBatch) -> None:
        super().__init__(loss=None, optimizer=engine.optimizer)
        self.engine, self.source = engine, source

    def step(self, batch: torch.Tensor) -> float:
        self.source.batch = batch
        out = self.engine.train_step()
        self.engine.step += 1
        return out.loss


def engine_trainee(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rows: int,
    micro_batch_size: int | None = None,
    device: torch.device = torch.device("cpu"),
    precision: str = "fp32",
    compile: bool = False,
) -> Trainee:
    """The engine's step on ``rows`` sequences, accumulated over micro batches if given, on
    ``device`` (where ``model`` lives) in ``precision`` (``bf16``: autocast, as the trainer),
    through ``torch.compile`` if ``compile``."""
    source = OneBatch()
    micro = micro_batch_size or rows
    # No pad id occurs in uniform random tokens above the specials, so every position is a target.
    objective = ClmConfig().build(SpecialTokenIds(pad=-1, bos=1, eos=2, mask=3), 0)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    engine = Engine(
        model,
        objective,
        source,
        optimizer,
        lambda step: 1.0,
        BatchPlan(rows, micro, 1, rows // micro),
        LoopSettings(max_steps=10**9, seed=0, precision=precision, compile=compile),
        DistContext(0, 1, 0, device),
    )
    return EngineTrainee(engine, source)


def logits_loss(logits_fn: Callable[[torch.Tensor], torch.Tensor]) -> LossFn:
    def loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits_fn(inputs).flatten(0, 1), targets.flatten())

    return loss


def features_loss(model: torch.nn.Module) -> LossFn:
    def loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out = model(inputs, output="features")
        return linear_cross_entropy(out.hidden.flatten(0, 1), out.head, targets.flatten())

    return loss


def make_trainees(cfg: ModelConfig, lr: float, rows: int) -> dict[str, Trainee]:
    from transformers import LlamaForCausalLM  # here: gpu.py reuses this module without it

    torch.manual_seed(0)
    ours = build_model(cfg)
    copies = {"engine": build_model(cfg), "ours-logits": build_model(cfg)}
    for copy in copies.values():
        copy.load_state_dict(ours.state_dict())
    theirs = LlamaForCausalLM._from_config(
        hf_config(cfg), attn_implementation="sdpa", dtype=torch.float32
    )
    theirs.config.use_cache = False  # training: no key/value cache
    theirs.load_state_dict(hf_state_dict(ours))

    def adamw(model: torch.nn.Module) -> torch.optim.Optimizer:
        return OPTIMIZERS.parse({"name": "adamw", "lr": lr}).build(model)

    return {
        "ours": Trainee(features_loss(ours), adamw(ours)),
        "engine": engine_trainee(copies["engine"], adamw(copies["engine"]), rows),
        "ours-logits": Trainee(logits_loss(copies["ours-logits"]), adamw(copies["ours-logits"])),
        "transformers": Trainee(
            logits_loss(lambda inputs: theirs(input_ids=inputs).logits), adamw(theirs)
        ),
    }


def time_interleaved(
    trainees: dict[str, Trainee], batch: Callable[[], torch.Tensor], warmup: int, steps: int
) -> list[float]:
    """Warm every trainee up on the same batches (untimed; the first step creates optimizer
    state), then time ``steps`` steps each on the same batches, back to back, rotating the order
    so none always runs right after another. Returns each trainee's loss on the first batch."""
    first = batch()
    first_losses = [trainee.step(first) for trainee in trainees.values()]
    for _ in range(warmup - 1):
        warm = batch()
        for trainee in trainees.values():
            trainee.step(warm)
    order = list(trainees.values())
    for _ in range(steps):
        timed = batch()
        for trainee in order:
            trainee.timed_step(timed)
        order = order[1:] + order[:1]
    return first_losses


def bench_preset(name: str, args: argparse.Namespace) -> tuple[str, float]:
    """The preset's summary line (without the peak fraction) and our achieved FLOP/s."""
    cfg = ModelConfig(preset=name, vocab_size=args.vocab, max_seq_len=args.seq_len)
    trainees = make_trainees(cfg, lr=1e-3, rows=args.batch_size)
    gen = torch.Generator().manual_seed(1)

    def batch() -> torch.Tensor:
        return torch.randint(0, args.vocab, (args.batch_size, args.seq_len + 1), generator=gen)

    # The first batch's losses show that all three start from one model.
    first_losses = time_interleaved(trainees, batch, args.warmup, args.steps)

    tokens_per_step = args.batch_size * args.seq_len
    rates = {key: trainee.tokens_per_s(tokens_per_step) for key, trainee in trainees.items()}
    speedup = trainees["ours"].speedup_over(trainees["transformers"])
    logits_speedup = trainees["ours-logits"].speedup_over(trainees["transformers"])
    engine_speedup = trainees["engine"].speedup_over(trainees["transformers"])
    achieved = rates["ours"] * flops_per_token(cfg, args.seq_len)
    print(
        f"# {name}: total params {count_parameters(cfg).total:,}; first losses (same weights) "
        + " / ".join(f"{loss:.4f}" for loss in first_losses)
        + "; tokens/s "
        + ", ".join(f"{key} {rate:,.0f}" for key, rate in rates.items())
        + f"; ours-logits vs transformers {logits_speedup:.2f}"
        + f"; ours {achieved / 1e9:.1f} GFLOP/s",
        flush=True,
    )
    line = (
        f"{name} params={count_parameters(cfg).non_embedding} tokens_per_s={rates['ours']:.0f} "
        f"vs_transformers={speedup:.2f} engine_vs_transformers={engine_speedup:.2f}"
    )
    return line, achieved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small,medium", help="comma-separated names")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model (>= 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=8192, help="the default tokenizer size")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    torch.set_num_threads(args.threads)

    print(
        f"# torch {torch.__version__}, {args.threads} threads, batch {args.batch_size} x "
        f"{args.seq_len} tokens, vocab {args.vocab}",
        flush=True,
    )
    # The peak is measured between presets too and the best taken, so a moment of other load
    # during one measurement cannot understate it (and inflate the fractions).
    peaks = [matmul_peak_flops()]
    results = []
    for name in args.presets.split(","):
        results.append(bench_preset(name, args))
        peaks.append(matmul_peak_flops())
    peak = max(peaks)
    print(f"# fp32 matmul peak {peak / 1e9:.1f} GFLOP/s (best of {len(peaks)} measurements)")
    for line, achieved in results:
        print(f"{line} peak_fraction={achieved / peak:.2f}")


if __name__ == "__main__":
    main()
