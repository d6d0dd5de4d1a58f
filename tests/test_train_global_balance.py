"""Global-batch load balancing through the engine's step statistics: with ``balance: global`` the
load-balancing loss and the gradient of a step are those of its whole global batch, so gradient
accumulation and two DDP processes give what one process gives on the batch at once; with
``balance: micro`` accumulation changes both. See ``tests/moe_setup.py`` for the step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from moe_setup import ROWS, SEQ_LEN, TOP_K, one_step
from transferlab.train import load_run, read_metrics, train

LAUNCH = """
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, sys.argv[1])
from moe_setup import one_step
from transferlab.train.distributed import init_distributed

torch.set_num_threads(1)
dist = init_distributed("cpu")
result = one_step("global", 2, dist)
if dist.is_main:
    Path(sys.argv[2]).write_text(json.dumps(result))
dist.close()
"""


def assert_same_step(a: dict, b: dict, rel: float = 1e-5) -> None:
    assert a["loss"] == pytest.approx(b["loss"], rel=rel)
    assert a["metrics"].keys() == b["metrics"].keys() == {"lbl", "router_z"}
    for name in a["metrics"]:
        assert a["metrics"][name] == pytest.approx(b["metrics"][name], rel=rel), name
    for name, update in a["updates"].items():
        torch.testing.assert_close(
            torch.tensor(update), torch.tensor(b["updates"][name]), rtol=rel, atol=1e-7
        )


def relative_gap(a: dict, b: dict) -> float:
    """The largest relative difference between two steps' router updates."""
    gaps = []
    for name in a["updates"]:
        if name.endswith("router.weight"):
            x, y = torch.tensor(a["updates"][name]), torch.tensor(b["updates"][name])
            gaps.append(float((x - y).norm() / y.norm()))
    return max(gaps)


def test_global_balance_with_accumulation_equals_the_whole_batch_at_once():
    whole = one_step("global", micro_batch_size=ROWS)
    accumulated = one_step("global", micro_batch_size=2)
    assert whole["loads"] == []  # one micro batch on one process: its own forward is the step
    # Each MoE layer was handed its loads over the 4 micro batches: every token-slot once.
    assert len(accumulated["loads"]) == 2
    assert all(sum(loads) == ROWS * SEQ_LEN * TOP_K for loads in accumulated["loads"])
    assert_same_step(accumulated, whole)


def test_micro_balance_changes_with_accumulation_and_equals_global_without_it():
    whole = one_step("micro", micro_batch_size=ROWS)
    accumulated = one_step("micro", micro_batch_size=2)
    assert accumulated["loads"] == []  # micro balancing asks for no step statistics
    assert_same_step(whole, one_step("global", micro_batch_size=ROWS), rel=0)
    lbl_whole, lbl_accumulated = whole["metrics"]["lbl"], accumulated["metrics"]["lbl"]
    assert abs(lbl_accumulated - lbl_whole) > 0.01 * lbl_whole  # 1000x the tolerance
    assert relative_gap(accumulated, whole) > 0.1  # the routers move differently
    assert accumulated["loss"] == pytest.approx(whole["loss"], rel=1e-5)  # the main loss agrees


def test_two_gloo_processes_hand_every_layer_the_single_process_global_loads(tmp_path):
    """Two ranks, micro batches of 2, two accumulation steps each, against one process with
    the same four micro batches (loads: integers, equal exactly) and against one process with
    the whole batch at once (losses and updates: float rounding apart)."""
    (tmp_path / "launch.py").write_text(LAUNCH)
    out = tmp_path / "ddp.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    tests = str(Path(__file__).parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*cmd, str(tmp_path / "launch.py"), tests, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads(out.read_text())
    single = one_step("global", micro_batch_size=2)
    assert ddp["loads"] == single["loads"] and len(ddp["loads"]) == 2
    assert_same_step(ddp, one_step("global", micro_batch_size=ROWS))


def test_a_moe_run_logs_its_aux_losses_and_resumes_bit_for_bit(tiny_config):
    moe = (
        "model.mlp={name: moe, n_experts: 4, top_k: 2, shared_expert: true, balance: global}",
        "trainer.micro_batch_size=2",
    )
    whole = train(tiny_config("name=whole", *moe))
    rows = read_metrics(whole.run_dir / "metrics.jsonl")
    assert all({"lbl", "router_z"} <= row.keys() for row in rows)
    part_cfg = tiny_config("name=part", *moe)
    assert train(part_cfg, stop_after=3).interrupted
    resumed = train(part_cfg, resume=True)
    timing = ("tokens_per_s", "elapsed_s")
    strip = [{k: v for k, v in r.items() if k not in timing} for r in rows]
    again = read_metrics(resumed.run_dir / "metrics.jsonl")
    assert [{k: v for k, v in r.items() if k not in timing} for r in again] == strip
    for (name, x), (_, y) in zip(
        load_run(whole.run_dir).model.state_dict().items(),
        load_run(resumed.run_dir).model.state_dict().items(),
        strict=True,
    ):
        assert torch.equal(x, y), name
