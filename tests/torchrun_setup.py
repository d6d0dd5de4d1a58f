"""Train a run config with two CPU processes under torchrun (gloo), for the DDP and FSDP tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from transferlab.config import RunConfig

# argv: config, resume (0/1), stop_after (-1: none); --allow-changes comes with resume
LAUNCH = """
import sys
import torch
from transferlab.config import RunConfig, load_config
from transferlab.train import train

torch.set_num_threads(1)
resume, stop_after = sys.argv[2] == "1", int(sys.argv[3])
train(
    load_config(RunConfig, sys.argv[1]),
    resume=resume,
    allow_changes=resume,
    stop_after=None if stop_after < 0 else stop_after,
)
"""


def train_on_two_ranks(
    cfg: RunConfig, tmp_path: Path, *, resume: bool = False, stop_after: int | None = None
) -> Path:
    """Train ``cfg`` with two CPU processes under torchrun (gloo); its run directory. A
    ``resume`` accepts changes of the resumable trainer fields (``--allow-changes``)."""
    config = tmp_path / f"{cfg.name}.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    (tmp_path / "launch.py").write_text(LAUNCH)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    args = [str(config), "1" if resume else "0", str(-1 if stop_after is None else stop_after)]
    proc = subprocess.run(
        [*cmd, str(tmp_path / "launch.py"), *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(cfg.trainer.out_dir) / cfg.name
