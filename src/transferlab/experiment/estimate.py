"""A wall-time estimate of a plan, for ``--dry-run``, from a short measurement of this machine:
a few optimizer steps of each distinct planned training shape (model, vocabulary, batch, sequence
length, objective, optimizer), timed on random tokens and cached per machine in
``cache_root()/machine/<CPU model, threads, torch version>/steps.json``, so a second dry run, and
the real run's own plan, measure nothing.

A run costs its steps, its validations (forward only: about a third of a step per batch) and a
fixed setup (data loading, checkpoints); evaluation adds ``EVAL_OVERHEAD`` of the training time,
a rule of thumb the step measurement does not cover (tasks are not run to estimate them).

The vocabulary size (and so the output layer's cost) is known only once the tokenizer exists. For
a world the estimate builds the data stage (seconds, and cached for the real run); for real
sources, whose data stage may curate and tokenize for minutes, it uses the data stage if it is
already built and else the tokenizer's configured ``vocab_size``, an upper bound. A later stage
reads its first stage's tokenizer, so it has that stage's vocabulary."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models

from transferlab.artifacts import cache_root, content_key, is_complete, write_json_atomic
from transferlab.config import RunConfig
from transferlab.data.prepare import data_dir, prepare_data
from transferlab.data.tokenizer import SPECIAL_TOKENS, TextTokenizer
from transferlab.experiment.planner import Plan, PlannedRun
from transferlab.objectives.context import TextContext, text_context
from transferlab.objectives.tokens import model_vocab

EVAL_OVERHEAD = 0.25
VALIDATION_STEP_FRACTION = 1 / 3  # a forward pass of a training step's forward + backward
SETUP_SECONDS = 1.0  # per run: data, model and optimizer set up, final checkpoint
WARMUP_STEPS, TIMED_STEPS = 2, 5


def estimate_seconds(plan: Plan, jobs: int = 1) -> float:
    """Seconds to finish the unfinished runs of ``plan`` with ``jobs`` parallel processes (done
    runs cost nothing; a stage that several variants share is trained once and counted once).

    Each run is timed at the threads a pool worker gets (the cores shared among the jobs); the
    wall time is the larger of the total spread over the jobs and the longest chain of stages,
    which must run one after another."""
    threads = worker_threads(jobs)
    unique = {run.key: run for run in plan.runs if run.status() != "done"}
    seconds = {key: run_seconds(run, plan, threads) for key, run in unique.items()}
    return max(sum(seconds.values()) / jobs, _longest_chain(unique, seconds), 0.0)


def worker_threads(jobs: int) -> int:
    """The torch threads of each of ``jobs`` local worker processes (as the executor sets)."""
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else torch.get_num_threads()


def run_seconds(run: PlannedRun, plan: Plan, threads: int | None = None) -> float:
    """Seconds to train ``run`` (a run of ``plan``) from scratch and evaluate it, on
    ``threads`` torch threads (default: this process's); the vocabulary is that of the chain's
    first stage, whose tokenizer every stage reads."""
    cfg = run.config
    if cfg.model.vocab_size is None:
        vocab = _vocab_size(_first_stage(run, plan))
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"vocab_size": vocab})})
    return SETUP_SECONDS + training_seconds(cfg, threads) * (1 + EVAL_OVERHEAD)


def _longest_chain(runs: dict[str, PlannedRun], seconds: dict[str, float]) -> float:
    """The most seconds along one chain of unfinished stages (parent before child)."""
    total: dict[str, float] = {}

    def chain(key: str) -> float:
        if key not in total:
            parent = runs[key].parent
            total[key] = seconds[key] + (chain(parent) if parent in runs else 0.0)
        return total[key]

    return max((chain(key) for key in runs), default=0.0)


def training_seconds(cfg: RunConfig, threads: int | None = None) -> float:
    """Seconds of ``cfg``'s optimizer steps and validations (setup and evaluation aside)."""
    trainer = cfg.trainer
    step = step_seconds(cfg, threads)
    validations = trainer.max_steps // trainer.eval_interval if trainer.eval_interval else 0
    validation = validations * trainer.eval_batches * step * VALIDATION_STEP_FRACTION
    return trainer.max_steps * step + validation


def machine_dir(threads: int | None = None) -> Path:
    """This machine's measurements: a CPU model, thread count and torch version of their own."""
    machine = {
        "cpu": _cpu_model(),
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
    }
    return cache_root() / "machine" / content_key(machine)


def step_seconds(cfg: RunConfig, threads: int | None = None) -> float:
    """Seconds per optimizer step of ``cfg``'s training shape on this machine with ``threads``
    torch threads (default: this process's), measured once."""
    model_cfg = cfg.model
    if model_cfg.vocab_size is None:
        model_cfg = model_cfg.model_copy(update={"vocab_size": _vocab_size(cfg)})
    shape = {
        "model": model_cfg.to_dict(),
        "batch_size": cfg.trainer.batch_size,
        "micro_batch_size": cfg.trainer.micro_batch_size,
        "seq_len": cfg.data.seq_len,
        "objective": cfg.objective.to_dict(),
        "optimizer": cfg.optimizer.name,
    }
    path = machine_dir(threads) / "steps.json"
    table = json.loads(path.read_text()) if path.is_file() else {}
    key = content_key(shape)
    if key not in table:
        table[key] = _measure_steps(cfg.model_copy(update={"model": model_cfg}), threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        # merged afresh: another process may have added its shapes meanwhile
        latest = json.loads(path.read_text()) if path.is_file() else {}
        write_json_atomic(path, latest | table)
    return table[key]


def _measure_steps(cfg: RunConfig, threads: int | None = None) -> float:
    """The median of a few timed engine steps on random tokens (after warm-up steps) with
    ``threads`` torch threads: on a shared machine the fastest step is a lucky one, which the
    real run does not repeat."""
    from transferlab.data.tokenizer import SpecialTokenIds
    from transferlab.train.batching import plan_batches
    from transferlab.train.distributed import DistContext
    from transferlab.train.engine import Engine, LoopSettings

    before = torch.get_num_threads()
    vocab = cfg.model.vocab_size - len(cfg.objective.added_tokens())  # the tokenizer's ids
    text = _text_context(cfg, vocab) if cfg.objective.needs_text else None
    if text is not None:  # random ids stay inside the tables the objective built from it
        vocab = min(vocab, text.tokenizer.vocab_size - len(cfg.objective.added_tokens()))
    with torch.random.fork_rng(devices=[]):  # the measurement must not move the caller's RNG
        torch.set_num_threads(threads or before)
        torch.manual_seed(0)
        model = cfg.objective.build_networks(cfg.model)
        window = torch.randint(4, vocab, (cfg.trainer.batch_size, cfg.data.seq_len + 1))
        engine = Engine(
            model,
            cfg.objective.build(SpecialTokenIds(), vocab, text),
            _SameWindows(window),
            cfg.optimizer.build(model),
            cfg.schedule.build(cfg.trainer.max_steps),
            plan_batches(cfg.trainer, 1),
            LoopSettings(max_steps=cfg.trainer.max_steps, seed=0, precision="fp32"),
            DistContext(0, 1, 0, torch.device("cpu")),
        )
        times = []
        try:
            for i in range(WARMUP_STEPS + TIMED_STEPS):
                start = time.perf_counter()
                engine.train_step()
                if i >= WARMUP_STEPS:
                    times.append(time.perf_counter() - start)
        finally:
            torch.set_num_threads(before)
    return statistics.median(times)


class _SameWindows:
    """A batch source that yields one fixed batch of windows (timing needs no real data)."""

    def __init__(self, window: torch.Tensor) -> None:
        self.window = window

    def global_batch(self) -> torch.Tensor:
        return self.window

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _first_stage(run: PlannedRun, plan: Plan) -> RunConfig:
    """The config of the first stage of ``run``'s chain, whose tokenizer every stage reads."""
    by_key = {r.key: r for r in plan.runs}
    while run.parent is not None:
        run = by_key[run.parent]
    return run.config


def _text_context(cfg: RunConfig, vocab: int) -> TextContext:
    """What an objective that reads text is built with for the measurement: the run's own
    context where its data stage exists or is quick to build (as ``_vocab_size`` decides), else
    a stand-in word-level tokenizer of ``vocab`` ids and no entities, as real text has none."""
    if cfg.data.sources and not is_complete(data_dir(cfg)):
        return TextContext(_stand_in_tokenizer(vocab))
    return text_context(cfg, prepare_data(cfg).tokenizer_path)


def _stand_in_tokenizer(vocab: int) -> TextTokenizer:
    """A word-level tokenizer of ``vocab`` ids: the special tokens, then words ``" w4"`` ..."""
    pieces = [*SPECIAL_TOKENS, *(f" w{i}" for i in range(len(SPECIAL_TOKENS), vocab))]
    tokenizer = Tokenizer(models.WordLevel({piece: i for i, piece in enumerate(pieces)}, "<pad>"))
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.decoder = decoders.Fuse()
    return TextTokenizer(tokenizer)


def _vocab_size(cfg: RunConfig) -> int:
    """The model's vocabulary: the tokenizer's ids and the objective's added tokens."""
    if cfg.data.sources and not is_complete(data_dir(cfg)):
        return model_vocab(cfg.objective, cfg.tokenizer.vocab_size)
    return model_vocab(cfg.objective, prepare_data(cfg).vocab_size)
