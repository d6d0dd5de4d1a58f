"""Training throughput of every pretraining objective on one model shape, against clm trained in
the same process on the same windows.

    python benchmarks/objective_throughput.py --presets micro,tiny --threads 2
    python benchmarks/objective_throughput.py --quick      # a few seconds: does it run

Every registered objective (``OBJECTIVES``, new ones included) except the fine-tuning-only ones
(``FINE_TUNING_ONLY``, whose batch source is task examples, not token windows) trains at its
defaults (``REQUIRED_SETTINGS`` fills the fields an objective has no default for). Each is a run
config on the bios world (``--people``, a ``--pii`` share of documents stating personal data, so
that conditional training's scorer gives both verdicts), built by the trainer itself
(``train.trainer.Pretraining``: the model vocabulary grown by the objective's added tokens, the
networks the objective trains, electra's generator included, the optimizer, and for objectives
that read text the run's tokenizer and the world's entities), fp32, eager, one micro batch per
step. Then the engine's own window loader is swapped for the benchmark's, so all objectives step
through the same packed bios windows (``--batch-size`` x ``--seq-len`` + 1 tokens; the cost of
the objectives that rewrite text depends on the text) in rotating order, timed around
``Engine.train_step``, what ``transferlab train`` runs. Reported per objective:

  tokens_per_s      input tokens (batch x seq_len) over the fastest timed step, as timeit
                    reports (other load on a shared machine only ever slows a step down);
  targets_per_step  the positions carrying loss in one step (the objective's ``n_targets``,
                    the median over the timed steps: masking draws differ per step);
  make_batch_ms     the objective's batch building alone (``make_batch``, on the CPU before
                    the forward), its fastest call within the timed steps;
  vs_clm            the median over windows of clm's step time / this objective's, measured
                    back to back (above 1: faster than clm), so a slow drift of the load cancels;
  peak_fraction     achieved FLOP/s (tokens/s x the run's ``flops_per_token``, what the trainer
                    records in run_info.json) over the measured fp32 matmul peak;
  head_at_targets   the same with the model's token head counted at the target positions only
                    (``head_at_targets``), which is what the fused loss computes.
FLOPs are counted per input token, PaLM-style (``models.flops``): 6 x the matmul weights (block
linears and output head) + attention over the full L x L matrix, for the transferred model, the
output head at every position; an objective that trains networks of its own (electra's
generator) adds them in its ``ObjectiveConfig.flops_per_token``. The loss drops the positions
without a target before the head (``models.loss``), so an objective with few targets (mlm,
span corruption) runs fewer FLOPs than that count: ``head_at_targets`` removes the head's share
at the other positions (nothing for clm, nor for electra, whose discriminator has a target at
every position and whose own count already has its generator's head at the masked share).

Ends with one line per preset and objective:
    PRESET objective=NAME tokens_per_s=X targets_per_step=T make_batch_ms=M vs_clm=R
           flops_per_token=F peak_fraction=P head_at_targets=Q
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from train_throughput import EngineTrainee, OneBatch, matmul_peak_flops, time_interleaved
from transferlab.config import OBJECTIVES, ConfigError, RunConfig, validate
from transferlab.data import PackedLoader, prepare_data
from transferlab.objectives import Attention, Batch, LossOutput, Objective
from transferlab.train.distributed import DistContext
from transferlab.train.trainer import Pretraining

# Objectives that train on task examples (pairs of prompt and answer), not on token windows.
FINE_TUNING_ONLY = frozenset({"answer_lm"})
REFERENCE = "clm"
# The fields an objective requires (it has no default for them), as the recipes set them:
# conditional judges each document with the pii scorer (recipe conditional-training).
REQUIRED_SETTINGS: dict[str, dict[str, Any]] = {"conditional": {"scorer": {"name": "pii"}}}


def head_at_targets(flops_per_token: float, head_flops: float, target_share: float) -> float:
    """Training FLOPs per input token with the token head (``head_flops`` per position) run at
    the ``target_share`` of positions that carry a target instead of at all of them."""
    if not 0 <= target_share <= 1:
        raise ValueError(f"target_share={target_share} is not a share of positions in [0, 1]")
    return flops_per_token - head_flops * (1 - target_share)


def pretraining_objectives(names: Iterable[str]) -> list[str]:
    """The objectives to compare among registered ``names``: the reference (clm) first, then the
    others in name order, the fine-tuning-only ones left out."""
    names = set(names)
    if REFERENCE not in names:
        raise ValueError(f"no {REFERENCE!r} objective registered; the ratios are against it")
    return [REFERENCE, *sorted(names - FINE_TUNING_ONLY - {REFERENCE})]


class TimedObjective(Objective):
    """An objective as the engine uses it, with the time of its last ``make_batch`` and the
    target count of its last global batch recorded."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.make_batch_s = 0.0
        self.targets = 0

    @property
    def attention(self) -> Attention:
        return self.objective.attention

    def make_batch(self, source: Any, generator: torch.Generator) -> Batch:
        start = time.perf_counter()
        batch = self.objective.make_batch(source, generator)
        self.make_batch_s = time.perf_counter() - start
        return batch

    def n_targets(self, batch: Batch) -> int:
        # The engine counts the global batch's targets once per step, before the micro batches.
        self.targets = self.objective.n_targets(batch)
        return self.targets

    def loss(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        return self.objective.loss(model, batch)


class ObjectiveTrainee(EngineTrainee):
    """The trainer's engine for one objective, fed the benchmark's windows; each timed step also
    records the objective's ``make_batch`` time and target count."""

    def __init__(self, stage: Pretraining) -> None:
        source = OneBatch()
        stage.engine.batches = source
        self.timed = stage.engine.objective = TimedObjective(stage.engine.objective)
        super().__init__(stage.engine, source)
        self.flops_per_token: int = stage.info["flops_per_token"]
        # The transferred model's token head per position (models.flops: 6 d V for training).
        self.head_flops = 6 * stage.cfg.model.d_model * stage.cfg.model.vocab_size
        self.make_batch_seconds: list[float] = []
        self.targets: list[int] = []

    def timed_step(self, batch: torch.Tensor) -> None:
        super().timed_step(batch)
        self.make_batch_seconds.append(self.timed.make_batch_s)
        self.targets.append(self.timed.targets)


def run_config(preset: str, objective: str, args: argparse.Namespace, out_dir: Path) -> RunConfig:
    steps = args.warmup + args.steps
    return validate(
        RunConfig,
        {
            "name": f"objbench-{preset}-{objective}",
            "seed": 0,
            "world": {"name": "bios", "num_people": args.people, "pii_fraction": args.pii},
            "data": {"seq_len": args.seq_len},
            "model": {"preset": preset},
            "objective": {"name": objective, **REQUIRED_SETTINGS.get(objective, {})},
            "trainer": {
                "max_steps": steps,
                "batch_size": args.batch_size,
                "eval_batches": 0,  # no validation set: only the training step is timed
                "precision": "fp32",
                "device": "cpu",
                "progress": False,
                "out_dir": str(out_dir),
            },
        },
    )


def make_trainees(
    preset: str, args: argparse.Namespace, out_dir: Path
) -> tuple[dict[str, ObjectiveTrainee], RunConfig]:
    """A trainee per objective (skipping, with a note, one whose defaults do not validate on
    this shape), and the reference's config (whose data every objective reads)."""
    dist = DistContext(0, 1, 0, torch.device("cpu"))
    trainees, reference = {}, None
    for name in pretraining_objectives(OBJECTIVES.names()):
        try:
            cfg = run_config(preset, name, args, out_dir)
        except ConfigError as exc:
            print(f"# {preset}: {name} skipped, its defaults do not fit this shape: {exc}")
            continue
        reference = reference or cfg
        trainees[name] = ObjectiveTrainee(Pretraining(cfg, dist, resume=False))
    return trainees, reference


def bench_preset(
    preset: str, args: argparse.Namespace, out_dir: Path
) -> list[tuple[str, float, float]]:
    """Each objective's summary line (without the peak fractions) and its achieved FLOP/s, as
    counted and with the head at the targets only."""
    trainees, reference = make_trainees(preset, args, out_dir)
    data = prepare_data(reference)  # built by the first trainee; the data key ignores the model
    loader = PackedLoader(data.train_folder(), args.seq_len, args.batch_size, seed=1)
    first_losses = time_interleaved(trainees, loader.global_batch, args.warmup, args.steps)
    print(
        f"# {preset}: first losses "
        + ", ".join(
            f"{name} {loss:.4f}" for name, loss in zip(trainees, first_losses, strict=True)
        ),
        flush=True,
    )

    tokens_per_step = args.batch_size * args.seq_len
    results = []
    for name, trainee in trainees.items():
        rate = trainee.tokens_per_s(tokens_per_step)
        targets = statistics.median(trainee.targets)
        executed = head_at_targets(
            trainee.flops_per_token, trainee.head_flops, targets / tokens_per_step
        )
        line = (
            f"{preset} objective={name} tokens_per_s={rate:.0f} "
            f"targets_per_step={targets:.0f} "
            f"make_batch_ms={1e3 * min(trainee.make_batch_seconds):.1f} "
            f"vs_clm={trainee.speedup_over(trainees[REFERENCE]):.2f} "
            f"flops_per_token={trainee.flops_per_token}"
        )
        results.append((line, rate * trainee.flops_per_token, rate * executed))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="micro,tiny", help="comma-separated names")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per objective")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per objective (>= 1)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--people", type=int, default=500, help="people of the bios world")
    parser.add_argument(
        "--pii",
        type=float,
        default=0.25,
        help="share of documents stating personal data (as in recipe conditional-training, so "
        "the conditional objective's scorer gives both verdicts)",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--quick", action="store_true", help="nano preset, 2 timed steps of 4 x 64 tokens"
    )
    args = parser.parse_args()
    if args.quick:
        args.presets, args.steps, args.warmup = "nano", 2, 1
        args.batch_size, args.seq_len, args.people = 4, 64, 100
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    torch.set_num_threads(args.threads)
    print(
        f"# torch {torch.__version__}, {args.threads} threads, batch {args.batch_size} x "
        f"{args.seq_len} tokens, bios world of {args.people} people (pii_fraction {args.pii}), "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    # The peak is measured between presets too and the best taken (see train_throughput).
    peaks = [matmul_peak_flops()]
    results = []
    with tempfile.TemporaryDirectory(prefix="objbench-") as out_dir:
        for preset in args.presets.split(","):
            results += bench_preset(preset, args, Path(out_dir))
            peaks.append(matmul_peak_flops())
    peak = max(peaks)
    print(f"# fp32 matmul peak {peak / 1e9:.1f} GFLOP/s (best of {len(peaks)} measurements)")
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    for line, achieved, executed in results:
        print(f"{line} peak_fraction={achieved / peak:.2f} head_at_targets={executed / peak:.2f}")


if __name__ == "__main__":
    main()
