"""Training memory, throughput and loss per parameterization and optimizer, on one model shape.

    python benchmarks/train_memory.py --preset small --steps 200 --threads 2
    python benchmarks/train_memory.py --preset nano --steps 3 --people 200   # seconds: a check

Each variant (``variants``: a label, model overrides, an optimizer config) is built from the same
seed as the trainer builds a run and trained by the training engine (``Engine.train_step``, the
clm objective, fp32, one micro batch per step) on the same batches of the bios world; a variant
whose part or optimizer is not registered (yet) is skipped, saying so.

Memory, measured on each variant alone (the profiler sees every tensor of the process) in its
second step (the first creates the optimizer's state), in bytes:
  params       the parameters; buffers: the persistent buffers (the sparse support's indices)
  grads        the gradients, as backward leaves them (a post-accumulate-grad hook each)
  optimizer    the optimizer's state tensors after its step (``optimizer_state_bytes``)
  saved        what autograd keeps for backward: every tensor a saved-tensors hook packs in the
               step, each storage once, the parameters' and buffers' own storages left out
  activations  the peak over the step (forward, backward, optimizer step) of the bytes it
               allocates that are neither parameters, gradients nor optimizer state:
               torch.profiler with profile_memory records every allocation and free of the
               CPU allocator, and its memory timeline sorts each tensor into a category (saved
               activations, temporaries such as a sparse layer's composed weight, autograd's
               buffers); what existed before the step (buffers, the batch) is left out
  peak         the peak of all bytes allocated over that step, everything included
Then all variants are built afresh and train ``--steps`` steps taking turns, so a change of the
machine's load hits them alike: tokens/s from each one's fastest step (as timeit reports),
``train_loss`` the mean loss of its last tenth of the steps, ``val_loss`` the loss on the world's
validation windows after them; one learning rate for all (``--lr``), not each variant's best.

The table gives ratios against the first variant (dense AdamW); the lines after it read:
    LABEL params=B buffers=B grads=B optimizer=B saved=B activations=B peak=B tokens_per_s=X
          train_loss=L val_loss=V
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile
from torch.profiler._memory_profiler import _CATEGORY_TO_INDEX, Category

from transferlab.config import (
    ATTENTIONS,
    LINEARS,
    MLPS,
    NORMS,
    OPTIMIZERS,
    ConfigError,
    ModelConfig,
    RunConfig,
    validate,
)
from transferlab.data import PackedLoader, prepare_data
from transferlab.models import build_model
from transferlab.optim import optimizer_state_bytes
from transferlab.train.batching import plan_batches
from transferlab.train.callbacks.validation import validation_set, weighted_loss
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Engine, LoopSettings
from transferlab.train.trainer import resolve_model_vocab

MIB = 1024**2
PART_REGISTRIES = {"attention": ATTENTIONS, "mlp": MLPS, "norm": NORMS, "linear": LINEARS}
STATE_CATEGORIES = (Category.PARAMETER, Category.GRADIENT, Category.OPTIMIZER_STATE)


@dataclass(frozen=True)
class Variant:
    label: str
    model: dict[str, Any]  # overrides of the model section (the base sets the shape)
    optimizer: dict[str, Any]  # an optimizer config; ``lr`` comes from --lr when not given


def variants(rank: int, density: float) -> list[Variant]:
    """The compared variants, dense AdamW first (the ratios' reference); one line each."""
    adamw = {"name": "adamw"}
    sparse = {"name": "sparse_low_rank", "rank": rank, "density": density}
    return [
        Variant("dense", {}, adamw),
        Variant("low_rank", {"linear": {"name": "low_rank", "rank": rank}}, adamw),
        Variant("sparse_low_rank", {"linear": sparse}, adamw),
        Variant("galore", {}, {"name": "galore", "rank": rank}),
        Variant("moe", {"mlp": {"name": "moe"}}, adamw),
    ]


def unregistered(variant: Variant) -> list[str]:
    """The components ``variant`` names that no registry holds."""
    wanted = [("optimizer", OPTIMIZERS, variant.optimizer["name"])]
    wanted += [
        (field, PART_REGISTRIES[field], part["name"])
        for field, part in variant.model.items()
        if field in PART_REGISTRIES
    ]
    return [f"{kind} {name!r}" for kind, registry, name in wanted if name not in registry.names()]


def run_config(args: argparse.Namespace, variant: Variant) -> RunConfig:
    base = {
        "name": f"memory-{variant.label}",
        "seed": 0,
        "world": {"name": "bios", "num_people": args.people},
        "data": {"seq_len": args.seq_len},
        "model": {"preset": args.preset, **variant.model},
        "optimizer": {"lr": args.lr, **variant.optimizer},
        "schedule": {"name": "cosine", "warmup_steps": max(1, args.steps // 10)},
        "trainer": {"batch_size": args.batch_size, "max_steps": args.steps},
    }
    try:
        return validate(RunConfig, base)
    except ConfigError as exc:  # a component that landed with other fields than its line says
        raise SystemExit(f"variant {variant.label}: {exc}; update its line in variants()") from None


class Trainee:
    """A variant's model, optimizer and engine, built as the trainer builds a run, and the
    losses and times of the steps it ran."""

    def __init__(self, args: argparse.Namespace, variant: Variant) -> None:
        cfg = run_config(args, variant)
        data = prepare_data(cfg)  # shared by the variants: the data key ignores the model
        self.cfg = cfg = resolve_model_vocab(cfg, data.vocab_size)
        self.data, self.label = data, variant.label
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model)
        self.optimizer = cfg.optimizer.build(self.model)
        self.objective = cfg.objective.build(data.special, data.vocab_size)
        self.plan = plan_batches(cfg.trainer, 1)
        self.dist = DistContext(0, 1, 0, torch.device("cpu"))
        loader = PackedLoader(
            data.train_folder(), cfg.data.seq_len, cfg.trainer.batch_size, seed=cfg.seed
        )
        steps = cfg.trainer.max_steps
        self.engine = Engine(
            self.model,
            self.objective,
            loader,
            self.optimizer,
            cfg.schedule.build(steps),
            self.plan,
            LoopSettings(max_steps=steps, seed=cfg.seed, precision="fp32"),
            self.dist,
        )
        self.losses: list[float] = []
        self.seconds: list[float] = []

    @property
    def done(self) -> bool:
        return self.engine.step >= self.engine.max_steps

    def step(self) -> None:
        start = time.perf_counter()
        self.losses.append(self.engine.train_step().loss)
        self.seconds.append(time.perf_counter() - start)
        self.engine.step += 1

    def tokens_per_s(self) -> float:
        # The fastest step, as timeit reports: other load on the machine only ever slows a step.
        return self.plan.batch_size * self.cfg.data.seq_len / min(self.seconds)

    def train_loss(self) -> float:
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return sum(tail) / len(tail)

    def val_loss(self) -> float | None:
        validation = validation_set(self.cfg, self.data, self.objective, self.plan, self.dist)
        if validation is None:
            return None
        return weighted_loss(validation.evaluate(self.engine), validation.weights)


# ----------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class Memory:
    params: int
    buffers: int
    grads: int
    optimizer: int
    saved: int
    activations: int
    peak: int

    @property
    def state(self) -> int:
        """What lives through the whole run: weights, buffers, gradients, optimizer state."""
        return self.params + self.buffers + self.grads + self.optimizer


def tensor_bytes(tensors: Iterable[Any]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def persistent_buffer_bytes(model: torch.nn.Module) -> int:
    """The bytes of the buffers a checkpoint holds (not the rotary tables, derived ones)."""
    parameters = dict(model.named_parameters())
    return tensor_bytes(t for name, t in model.state_dict().items() if name not in parameters)


class GradientBytes:
    """The bytes of every parameter's gradient once backward has accumulated it (a hook per
    parameter: the engine clears the gradients before the step returns)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.sizes: dict[int, int] = {}
        self.handles = [
            p.register_post_accumulate_grad_hook(self._record)
            for p in model.parameters()
            if p.requires_grad
        ]

    def _record(self, param: torch.Tensor) -> None:
        self.sizes[id(param)] = tensor_bytes([param.grad])

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class SavedTensors:
    """A saved-tensors hook that sums the storages autograd keeps for backward (each once; the
    model's own parameters and buffers are not activations)."""

    def __init__(self, model: torch.nn.Module) -> None:
        owned = [*model.parameters(), *model.buffers()]
        self.owned = {t.untyped_storage().data_ptr() for t in owned}
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.owned:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)


def profiled_peaks(step: Callable[[], object]) -> tuple[int, int]:
    """(peak of all bytes, peak of the bytes ``step`` allocates outside parameters, gradients
    and optimizer state) on the CPU, from torch.profiler's categorized memory timeline."""
    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # Deprecated in favour of CUDA-only snapshots; it is still the categorized CPU timeline.
        warnings.simplefilter("ignore", FutureWarning)
        path = Path(tmp) / "timeline.json"
        prof.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())
    # Each row: a leading 0, then the bytes of each category in _CATEGORY_TO_INDEX order.
    if sizes and len(sizes[0]) != len(_CATEGORY_TO_INDEX) + 1:
        raise RuntimeError("torch.profiler's memory timeline changed layout; update this reader")
    state = [_CATEGORY_TO_INDEX[c] + 1 for c in STATE_CATEGORIES]
    other = [sum(row) - sum(row[i] for i in state) for row in sizes]
    # The first row holds what existed before the step (buffers, rotary tables, the loader's
    # windows): not activations of this step.
    return max(sum(row) for row in sizes), max(other) - other[0]


def measure_memory(trainee: Trainee) -> Memory:
    """The memory of the trainee's second step (the first creates the optimizer's state)."""
    trainee.step()
    grads, saved = GradientBytes(trainee.model), SavedTensors(trainee.model)
    with saved.hooks():
        peak, activations = profiled_peaks(trainee.step)
    grads.remove()
    return Memory(
        params=tensor_bytes(trainee.model.parameters()),
        buffers=persistent_buffer_bytes(trainee.model),
        grads=grads.bytes,
        optimizer=optimizer_state_bytes(trainee.optimizer),
        saved=saved.bytes,
        activations=activations,
        peak=peak,
    )


# ----------------------------------------------------------------------------- training, output
def train_in_turns(trainees: list[Trainee]) -> None:
    """Every trainee's steps, taking turns in rotating order."""
    order = list(trainees)
    while not all(t.done for t in order):
        for trainee in order:
            if not trainee.done:
                trainee.step()
        order = order[1:] + order[:1]


@dataclass(frozen=True)
class Result:
    label: str
    memory: Memory
    tokens_per_s: float
    train_loss: float
    val_loss: float | None


def table(results: list[Result]) -> str:
    def mib(n: int) -> str:
        return f"{n / MIB:.2f}"

    def vs_first(values: list[float]) -> list[str]:
        return [f"{v / values[0]:.2f}" for v in values]

    state = vs_first([r.memory.state for r in results])
    peak = vs_first([r.memory.peak for r in results])
    rate = vs_first([r.tokens_per_s for r in results])
    lines = [
        "| variant | params + buffers | grads | optimizer | saved | activations | peak (MiB) "
        "| state vs dense | peak vs dense | tokens/s | vs dense | train loss | val loss |",
        "|" + " --- |" * 13,
    ]
    for i, r in enumerate(results):
        m = r.memory
        val = "-" if r.val_loss is None else f"{r.val_loss:.3f}"
        lines.append(
            f"| {r.label} | {mib(m.params + m.buffers)} | {mib(m.grads)} | {mib(m.optimizer)} "
            f"| {mib(m.saved)} | {mib(m.activations)} | {mib(m.peak)} | {state[i]} | {peak[i]} "
            f"| {r.tokens_per_s:,.0f} | {rate[i]} | {r.train_loss:.3f} | {val} |"
        )
    return "\n".join(lines)


def summary_line(r: Result) -> str:
    fields = " ".join(f"{k}={v}" for k, v in dataclasses.asdict(r.memory).items())
    val = "none" if r.val_loss is None else f"{r.val_loss:.4f}"
    return (
        f"{r.label} {fields} tokens_per_s={r.tokens_per_s:.0f} "
        f"train_loss={r.train_loss:.4f} val_loss={val}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="the model shape of every variant")
    parser.add_argument("--rank", type=int, help="of the low-rank variants (default d_model/4)")
    parser.add_argument("--density", type=float, default=0.03, help="of sparse_low_rank's S")
    parser.add_argument("--steps", type=int, default=200, help="training steps per variant")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--people", type=int, default=2000, help="bios world size")
    parser.add_argument("--only", help="comma-separated variant labels (default: all)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2: the memory is that of the second")
    torch.set_num_threads(args.threads)
    # The paper's ratio (rank 128-512 for d_model 512-2048).
    rank = args.rank or ModelConfig(preset=args.preset).d_model // 4
    print(
        f"# torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()[0]:.1f}; "
        f"preset {args.preset}, rank {rank}, density {args.density}, batch {args.batch_size} "
        f"x {args.seq_len} tokens, {args.steps} steps at lr {args.lr}",
        flush=True,
    )
    chosen = []
    for variant in variants(rank, args.density):
        if args.only and variant.label not in args.only.split(","):
            continue
        missing = unregistered(variant)
        if missing:
            print(f"# {variant.label}: skipped, {', '.join(missing)} is not registered")
        else:
            chosen.append(variant)
    memory = [measure_memory(Trainee(args, variant)) for variant in chosen]
    trainees = [Trainee(args, variant) for variant in chosen]
    train_in_turns(trainees)
    results = [
        Result(t.label, m, t.tokens_per_s(), t.train_loss(), t.val_loss())
        for t, m in zip(trainees, memory, strict=True)
    ]
    print(table(results))
    for result in results:
        print(summary_line(result))


if __name__ == "__main__":
    main()
