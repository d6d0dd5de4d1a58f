"""The GPU paths of training: bf16 autocast, NCCL + DDP in one torchrun process, the fused AdamW
step. The last two run on CPU too (gloo for the process group), so what they check is checked
on every machine; the ``cuda`` ones need a CUDA GPU and are skipped without one
(``benchmarks/gpu.sh`` runs them: ``pytest -m cuda``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from transferlab.config import OPTIMIZERS, ModelConfig
from transferlab.models import build_model
from transferlab.train import train

CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ],
)
DEVICES = ["cpu", CUDA]


def _rel_diff(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# On CPU: tests/test_train_trainer.py::test_bf16_autocast_on_cpu_when_asked.
@pytest.mark.parametrize("device", [CUDA])
def test_a_bf16_run_autocasts_and_follows_the_fp32_run(device, tiny_config):
    fp32 = train(tiny_config("name=fp32", "trainer.max_steps=4", "trainer.device=cpu"))
    bf16 = train(
        tiny_config(
            "name=bf16", "trainer.max_steps=4", f"trainer.device={device}", "trainer.precision=bf16"
        )
    )
    info = json.loads((bf16.run_dir / "run_info.json").read_text())
    assert info["autocast"] == "torch.bfloat16"
    assert bf16.train_loss != fp32.train_loss  # the matrix products ran in bf16
    assert _rel_diff(bf16.train_loss, fp32.train_loss) < 1e-2


# One torchrun process: joins the group with the device's backend, checks an all-reduce, and
# writes how far DDP's gradients of one backward lie from the unwrapped model's.
DDP_WORKER = """
import json, sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from transferlab.config import ModelConfig
from transferlab.models import build_model

device, out = torch.device(sys.argv[1]), sys.argv[2]
backend = "nccl" if device.type == "cuda" else "gloo"
dist.init_process_group(backend=backend)
torch.manual_seed(0)
cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=64)
plain, wrapped = build_model(cfg).to(device), build_model(cfg).to(device)
wrapped.load_state_dict(plain.state_dict())
ddp = DistributedDataParallel(wrapped, device_ids=[0] if device.type == "cuda" else None)
ids = torch.randint(0, 64, (4, 17), generator=torch.Generator().manual_seed(1)).to(device)
for model in (plain, ddp):
    logits = model(ids[:, :-1])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
ones = torch.ones(3, device=device)
dist.all_reduce(ones)
grads = zip(plain.parameters(), wrapped.parameters(), strict=True)
json.dump({
    "backend": dist.get_backend(),
    "world_size": dist.get_world_size(),
    "all_reduce": ones.tolist(),
    "max_grad_diff": max((a.grad - b.grad).abs().max().item() for a, b in grads),
    "grad_scale": max(p.grad.abs().max().item() for p in plain.parameters()),
}, open(out, "w"))
dist.destroy_process_group()
"""


@pytest.mark.parametrize("device", DEVICES)
def test_ddp_in_one_torchrun_process_gives_the_plain_gradients(device, tmp_path):
    (tmp_path / "worker.py").write_text(DDP_WORKER)
    out = tmp_path / "ddp.json"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    proc = subprocess.run(
        [*torchrun, "1", str(tmp_path / "worker.py"), device, str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["backend"] == ("nccl" if device == "cuda" else "gloo")
    assert result["world_size"] == 1 and result["all_reduce"] == [1.0, 1.0, 1.0]
    assert result["grad_scale"] > 0
    assert result["max_grad_diff"] <= 1e-6 * result["grad_scale"]


@pytest.mark.parametrize("device", DEVICES)
def test_the_adamw_step_is_fused_and_equals_the_plain_loop(device):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=64)
    model = build_model(cfg).to(device)
    reference = build_model(cfg).to(device)
    reference.load_state_dict(model.state_dict())
    fused = OPTIMIZERS.parse({"name": "adamw", "lr": 1e-2, "weight_decay": 0.1}).build(model)
    assert all(group["fused"] for group in fused.param_groups)
    by_name = dict(reference.named_parameters())
    names = {id(p): n for n, p in model.named_parameters()}
    # The same groups (decay / no decay) and hyperparameters, through torch's plain loop.
    groups = [
        {
            **{k: v for k, v in g.items() if k not in ("fused", "foreach")},
            "params": [by_name[names[id(p)]] for p in g["params"]],
        }
        for g in fused.param_groups
    ]
    plain = torch.optim.AdamW(groups, fused=False, foreach=False)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            p.grad = torch.randn(p.shape, generator=gen).to(device)
            q.grad = p.grad.clone()
        fused.step()
        plain.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert p.device.type == device and fused.state[p]["exp_avg"].device.type == device
        assert not torch.equal(p, initial[name]), name
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
