"""Training throughput and memory of the moe mlp part against the dense SwiGLU model of the same
shape, at equal active parameters, and the cost of exact global-batch balancing under gradient
accumulation.

    python benchmarks/moe_throughput.py --preset tiny --experts 8 --top-k 2 --threads 2

Four trainees start from the same seed and train through the engine's step (``Engine.train_step``,
the clm objective, the project's AdamW; fp32, eager) on the same random token batches, taking
turns in rotating order:
  dense         the preset with its SwiGLU MLP;
  moe           the preset with ``mlp: moe`` (router, ``top_k`` of ``experts`` SwiGLU experts, an
                optional shared one) at the default expert width, the dense width divided by the
                experts a token passes through: equal active parameters (``flops_per_token``);
  moe-micro/acc the moe model with ``balance: micro`` and the batch accumulated over micro
                batches of ``--micro-batch-size``;
  moe-global/acc the same with ``balance: global``: the engine's step statistics add one
                gradient-free forward of the batch per step (none without accumulation or DDP).
tokens/s comes from a trainee's fastest step (as timeit reports); a ratio is the median over
batches of the two step times measured back to back, so a slow drift of the machine's load
cancels. Memory is what training holds at its peak, counted from the tensors: weights, gradients
and AdamW state (after a step), plus the activations one micro batch keeps for backward (every
tensor autograd saves, by storage, through ``torch.autograd.graph.saved_tensors_hooks``).

Ends with one line per trainee:
    NAME params=N active_flops_per_token=F tokens_per_s=X vs_dense=R memory_mib=M
and the global/micro step-time ratio under accumulation.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from train_throughput import (  # this folder: run as a script
    Trainee,
    engine_trainee,
    time_interleaved,
)
from transferlab.config import OPTIMIZERS, ModelConfig
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.models import build_model, count_parameters, flops_per_token
from transferlab.objectives import ClmConfig

MIB = 1024**2


def configs(args: argparse.Namespace) -> dict[str, tuple[ModelConfig, int | None]]:
    """Each trainee's model config and micro batch size (None: the whole batch at once)."""
    base = {"preset": args.preset, "vocab_size": args.vocab, "max_seq_len": args.seq_len}

    def moe(balance: str) -> ModelConfig:
        mlp = {
            "name": "moe",
            "n_experts": args.experts,
            "top_k": args.top_k,
            "shared_expert": args.shared,
            "balance": balance,
        }
        return ModelConfig(**base, mlp=mlp)

    return {
        "dense": (ModelConfig(**base), None),
        "moe": (moe("global"), None),
        "moe-micro/acc": (moe("micro"), args.micro_batch_size),
        "moe-global/acc": (moe("global"), args.micro_batch_size),
    }


def activation_bytes(model: torch.nn.Module, batch: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward of ``batch``."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    objective = ClmConfig().build(SpecialTokenIds(pad=-1, bos=1, eos=2, mask=3), 0)
    micro = objective.make_batch(batch, torch.Generator())
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = objective.loss(model, micro)
    del out
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(size for ptr, size in storages.items() if ptr not in parameters)


def state_bytes(trainee: Trainee) -> int:
    """Weights, gradients (as large as the weights) and the optimizer's state tensors."""
    optimizer = trainee.optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    weights = sum(p.numel() * p.element_size() for p in params)
    moments = sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for t in state.values()
        if torch.is_tensor(t)
    )
    return 2 * weights + moments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--shared", action="store_true", help="add a shared expert")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per trainee")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per trainee (>= 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--micro-batch-size", type=int, default=4, help="for the /acc trainees")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if args.batch_size % args.micro_batch_size:
        parser.error("--micro-batch-size must divide --batch-size")
    torch.set_num_threads(args.threads)
    print(
        f"# torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()[0]:.1f}, "
        f"preset {args.preset}, {args.experts} experts top-{args.top_k}"
        f"{' + shared' if args.shared else ''}, batch {args.batch_size} x {args.seq_len}, "
        f"micro batches of {args.micro_batch_size} for /acc, vocab {args.vocab}",
        flush=True,
    )
    cfgs = configs(args)
    trainees, models = {}, {}
    for name, (cfg, micro) in cfgs.items():
        torch.manual_seed(0)
        models[name] = build_model(cfg)
        optimizer = OPTIMIZERS.parse({"name": "adamw", "lr": 1e-3}).build(models[name])
        trainees[name] = engine_trainee(models[name], optimizer, args.batch_size, micro)
    gen = torch.Generator().manual_seed(1)

    def batch() -> torch.Tensor:
        return torch.randint(4, args.vocab, (args.batch_size, args.seq_len + 1), generator=gen)

    time_interleaved(trainees, batch, max(args.warmup, 1), args.steps)

    tokens_per_step = args.batch_size * args.seq_len
    probe = batch()
    for name, trainee in trainees.items():
        cfg, micro = cfgs[name]
        rows = probe[: micro or args.batch_size]
        memory = state_bytes(trainee) + activation_bytes(models[name], rows)
        ratio = trainee.speedup_over(trainees["dense"])
        print(
            f"{name} params={count_parameters(cfg).non_embedding} "
            f"active_flops_per_token={flops_per_token(cfg, args.seq_len)} "
            f"tokens_per_s={trainee.tokens_per_s(tokens_per_step):.0f} vs_dense={ratio:.2f} "
            f"memory_mib={memory / MIB:.1f}"
        )
    pairs = zip(
        trainees["moe-micro/acc"].step_seconds,
        trainees["moe-global/acc"].step_seconds,
        strict=True,
    )
    cost = statistics.median(global_s / micro_s for micro_s, global_s in pairs)
    print(f"global_over_micro_step_time_with_accumulation={cost:.2f}")


if __name__ == "__main__":
    main()
