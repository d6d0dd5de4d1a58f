"""FSDP2 (``trainer.parallelism: fsdp``): two CPU processes under torchrun (gloo) shard the model,
write sharded checkpoints that resume exactly, and follow the single-process and DDP runs."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.distributed.fsdp import fully_shard
from typer.testing import CliRunner

from conftest import TINY_RUN
from torchrun_setup import train_on_two_ranks
from transferlab.artifacts import is_complete
from transferlab.cli import app
from transferlab.config import ConfigError, ModelConfig, RunConfig, apply_overrides, validate
from transferlab.models import build_model
from transferlab.train import checkpoint as checkpoint_module
from transferlab.train import read_metrics, train
from transferlab.train.checkpoint import (
    WEIGHTS_FILE,
    checkpoint_dir,
    checkpoint_step,
    consolidate_checkpoint,
    list_checkpoints,
    load_run,
    load_train_state,
    read_meta,
)
from transferlab.train.distributed import DistContext
from transferlab.train.run_dir import config_key
from transferlab.train.trainer import Pretraining, check_sharded_callbacks

# Two blocks, so the model is three FSDP units (each block, and the root with the embedding)
SHAPE = ["model.n_layers=2"]
# Two micro batches of 2 per rank: gradients accumulate unreduced on the first
# (set_requires_gradient_sync(False)) and are reduce-scattered on the last.
FSDP = [*SHAPE, "trainer.parallelism=fsdp", "trainer.micro_batch_size=2"]
CURVES = ("train_loss", "val_loss", "grad_norm")
# Relative, on every logged loss and gradient norm: the runs compute the same global-batch
# gradient and differ only in the order of float32 sums (per-rank partial sums, then gloo's
# reduce-scatter or all-reduce), ~1e-7 relative here; a rank that trained on the wrong rows or
# normalized by its own targets moves them by 1e-3 or more.
CURVE_RTOL = 1e-5
# Absolute, on every weight after 4 and 8 AdamW steps (weights up to ~1): the ~1e-7 gradient
# differences pass through Adam's m / sqrt(v); measured at most 5e-6 against one process, 0
# against DDP on two ranks (the same two-term sums); a missing, stale or unsynchronized shard is
# off by the size of an update (lr 3e-3).
WEIGHT_ATOL = 1e-5

# Of the largest moment of each tensor, on Adam's moments after 4 steps of the fsdp and the
# single-process run: they hold the gradients' float differences (measured at most 2.1e-5);
# moments left at zero or taken from another parameter are off by the whole scale.
MOMENT_ATOL = 1e-4


def _config(root: Path, *overrides: str) -> RunConfig:
    data = apply_overrides(TINY_RUN, [f"trainer.out_dir={root}", *overrides])
    return validate(RunConfig, data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 8-step run in one process and with FSDP2 on two ranks."""
    root = tmp_path_factory.mktemp("fsdp")
    single = train(_config(root / "runs", "name=single", *SHAPE)).run_dir
    fsdp = train_on_two_ranks(_config(root / "runs", "name=fsdp", *FSDP), root)
    return {"root": root, "single": single, "fsdp": fsdp}


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / WEIGHTS_FILE))


def _assert_weights_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=WEIGHT_ATOL), name


def _assert_curves_close(run: Path, reference: Path) -> None:
    rows, expected = read_metrics(run / "metrics.jsonl"), read_metrics(reference / "metrics.jsonl")
    assert [r["step"] for r in rows] == [r["step"] for r in expected]  # rank 0 logs once
    for row, one in zip(rows, expected, strict=True):
        assert row["lr"] == one["lr"] and row["tokens"] == one["tokens"]
        for key in CURVES:
            if key in one:
                assert abs(row[key] - one[key]) <= CURVE_RTOL * abs(one[key]), (row["step"], key)


def test_two_fsdp_ranks_write_shards_and_follow_the_single_process_run(runs):
    fsdp, single = runs["fsdp"], runs["single"]
    _assert_curves_close(fsdp, single)
    assert [checkpoint_step(p) for p in list_checkpoints(fsdp)] == [4, 8]
    middle, last = checkpoint_dir(fsdp, 4), checkpoint_dir(fsdp, 8)
    # Each rank wrote its own file of shards; the optimizer state is in them, not in train_state
    shards = sorted(p.name for p in (middle / "sharded").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert "optimizer" not in load_train_state(middle) and read_meta(middle)["sharded"] is True
    # Only the last checkpoint gathers the whole weights into the single file
    assert not (middle / WEIGHTS_FILE).exists() and (last / WEIGHTS_FILE).is_file()
    _assert_weights_close(_weights(last), _weights(checkpoint_dir(single, 8)))


def test_a_sharded_checkpoint_consolidates_and_loads_like_a_single_file_one(runs, tmp_path):
    fsdp = tmp_path / "fsdp"
    shutil.copytree(runs["fsdp"], fsdp)
    middle = checkpoint_dir(fsdp, 4)
    # load_run reads the shards of a checkpoint without the single file, in one process
    from_shards = load_run(fsdp, step=4).model.state_dict()
    result = CliRunner().invoke(app, ["checkpoint", "consolidate", str(fsdp), "--step", "4"])
    assert result.exit_code == 0, result.output
    assert f"consolidated: {middle / WEIGHTS_FILE}" in result.output.replace("\n", "")
    consolidated = _weights(middle)
    _assert_weights_close(consolidated, _weights(checkpoint_dir(runs["single"], 4)))
    assert all(torch.equal(consolidated[k], v) for k, v in from_shards.items())
    assert is_complete(middle) and [checkpoint_step(p) for p in list_checkpoints(fsdp)] == [4, 8]
    with pytest.raises(ValueError, match="is not sharded; its model.safetensors is the single"):
        consolidate_checkpoint(checkpoint_dir(runs["single"], 4))


def test_a_stopped_fsdp_run_resumes_bit_for_bit(runs, tmp_path):
    """Stopped after 3 steps (a checkpoint between the intervals, as SIGTERM writes) and resumed
    on two ranks: every logged value and every weight equal the uninterrupted run's exactly.
    The resumed ranks read the same shards into the same layout and repeat the same reductions
    in the same order (gloo's are deterministic), so no rounding differs."""
    cfg = _config(tmp_path / "runs", "name=fsdp", *FSDP)
    train_on_two_ranks(cfg, tmp_path, stop_after=3)
    assert [checkpoint_step(p) for p in list_checkpoints(cfg.trainer.out_dir + "/fsdp")] == [3]
    run = train_on_two_ranks(cfg, tmp_path, resume=True)
    uninterrupted = runs["fsdp"]
    drop = {"elapsed_s", "tokens_per_s"}  # wall time
    rows = [
        {k: v for k, v in r.items() if k not in drop} for r in read_metrics(run / "metrics.jsonl")
    ]
    expected = [
        {k: v for k, v in r.items() if k not in drop}
        for r in read_metrics(uninterrupted / "metrics.jsonl")
    ]
    assert rows == expected
    last, reference = _weights(checkpoint_dir(run, 8)), _weights(checkpoint_dir(uninterrupted, 8))
    assert all(torch.equal(last[name], reference[name]) for name in reference)


def test_a_sharded_checkpoint_resumes_in_one_process(runs, tmp_path):
    """The layout is a resumable trainer field: the shards of step 4 load into the plain model
    and optimizer of one process (DCP reshards), which finishes the run as FSDP did."""
    run = tmp_path / "runs" / "fsdp"
    shutil.copytree(runs["fsdp"], run)
    shutil.rmtree(checkpoint_dir(run, 8))
    result = train(_config(tmp_path / "runs", "name=fsdp", *SHAPE), resume=True, allow_changes=True)
    assert result.steps == 8
    _assert_curves_close(run, runs["fsdp"])
    _assert_weights_close(
        _weights(checkpoint_dir(run, 8)), _weights(checkpoint_dir(runs["fsdp"], 8))
    )


def test_a_corrupt_shard_is_set_aside_and_the_checkpoint_before_it_resumes(runs, tmp_path):
    run = tmp_path / "runs" / "fsdp"
    shutil.copytree(runs["fsdp"], run)
    (checkpoint_dir(run, 8) / "sharded" / "__1_0.distcp").write_bytes(b"truncated")
    (checkpoint_dir(run, 8) / WEIGHTS_FILE).unlink()
    cfg = _config(tmp_path / "runs", "name=fsdp", *SHAPE, "trainer.max_steps=10")
    result = train(cfg, resume=True, allow_changes=True)
    assert result.steps == 10  # resumed from step 4, the newest checkpoint that loads
    aside = [p.name for p in (run / "checkpoints").iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].startswith("step_00000008")


@pytest.mark.slow
def test_fsdp_follows_ddp_and_resumes_a_single_file_checkpoint(runs, tmp_path):
    """DDP on two ranks gives the FSDP run's curve and weights; and the single-process run's
    step-4 checkpoint (whole weights, optimizer state by parameter index) resumed with FSDP on
    two ranks finishes like the single-process run."""
    ddp = train_on_two_ranks(
        _config(tmp_path / "runs", "name=ddp", *SHAPE, "trainer.micro_batch_size=2"), tmp_path
    )
    _assert_curves_close(runs["fsdp"], ddp)
    _assert_weights_close(
        _weights(checkpoint_dir(runs["fsdp"], 8)), _weights(checkpoint_dir(ddp, 8))
    )
    run = tmp_path / "runs" / "single"
    shutil.copytree(runs["single"], run)
    shutil.rmtree(checkpoint_dir(run, 8))
    train_on_two_ranks(_config(tmp_path / "runs", "name=single", *FSDP), tmp_path, resume=True)
    _assert_curves_close(run, runs["single"])
    _assert_weights_close(
        _weights(checkpoint_dir(run, 8)), _weights(checkpoint_dir(runs["single"], 8))
    )


def test_parallelism_is_validated_and_leaves_the_run_key_alone(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer\.parallelism.*'ddp' or 'fsdp'"):
        _config(tmp_path, "trainer.parallelism=zero3")
    assert config_key(_config(tmp_path, "trainer.parallelism=fsdp")) == config_key(
        _config(tmp_path)
    )


def test_callbacks_that_run_the_model_on_rank_0_alone_are_refused_with_sharded_weights(tmp_path):
    extras = "trainer.callbacks=[{name: stability}, {name: domain_loss}]"
    callbacks = [c.build() for c in _config(tmp_path, extras).trainer.callbacks]
    sharded = DistContext(0, 2, 0, torch.device("cpu"), parallelism="fsdp")
    with pytest.raises(ConfigError, match=r"trainer.callbacks \['domain_loss'\] run the model"):
        check_sharded_callbacks(callbacks, sharded)
    check_sharded_callbacks(callbacks, DistContext(0, 2, 0, torch.device("cpu")))  # ddp: fine
    check_sharded_callbacks(
        callbacks, DistContext(0, 1, 0, torch.device("cpu"), parallelism="fsdp")
    )


@pytest.fixture
def one_rank_group(tmp_path: Path):
    """A process group of this process alone: FSDP2 shards over it (one rank holds every
    shard), so its hooks and DCP's collectives run in the test's own process."""
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield DistContext(0, 1, 0, torch.device("cpu"), parallelism="fsdp")
    torch.distributed.destroy_process_group()


def _sharded(model: torch.nn.Module) -> torch.nn.Module:
    for block in model.blocks:
        fully_shard(block)
    return fully_shard(model)


@pytest.fixture
def one_rank_fsdp(one_rank_group):
    """A tiny model sharded over ``one_rank_group``, with its optimizer after one step."""
    torch.manual_seed(0)
    model = _sharded(build_model(ModelConfig(vocab_size=32, d_model=16, n_layers=2, n_heads=2)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randint(0, 32, (2, 8))).sum().backward()
    optimizer.step()
    return model, optimizer, one_rank_group


def test_sharded_blocks_hand_every_layers_aux_losses_to_the_model(one_rank_group):
    """FSDP2 rebuilds the containers among a sharded block's inputs that hold gradient tensors
    (the Context with the layers before it's losses): each layer's load-balancing and router
    losses must still reach the model's mean, as without sharding (a copy would lose them)."""
    cfg = {"vocab_size": 32, "d_model": 16, "n_layers": 3, "n_heads": 2}
    torch.manual_seed(0)
    plain = build_model(validate(ModelConfig, {**cfg, "mlp": {"name": "moe", "n_experts": 4}}))
    sharded = _sharded(copy.deepcopy(plain))
    ids = torch.randint(0, 32, (2, 8))
    expected = plain(ids, output="features").aux_losses
    got = sharded(ids, output="features").aux_losses
    assert sorted(expected) == sorted(got) == ["lbl", "router_z"]
    assert all(torch.equal(got[name], expected[name]) for name in expected)


def test_a_sharded_write_that_fails_leaves_no_checkpoint(one_rank_fsdp, tmp_path, monkeypatch):
    """A write that dies after some shards are on disk leaves no folder that lists (nor its
    temporary one); a whole write lists and reads back into a plain model."""
    model, optimizer, dist = one_rank_fsdp
    run = tmp_path / "run"

    def die_halfway(folder: Path, *_: object) -> None:
        (folder / "sharded").mkdir()
        (folder / "sharded" / "__0_0.distcp").write_bytes(b"part of the shards")
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint_module, "write_shards", die_halfway)
    with pytest.raises(OSError, match="No space left"):
        checkpoint_module.save_sharded_checkpoint(run, 4, model, optimizer, {}, {}, 2, dist)
    assert list_checkpoints(run) == [] and list((run / "checkpoints").iterdir()) == []
    monkeypatch.undo()
    path = checkpoint_module.save_sharded_checkpoint(run, 4, model, optimizer, {}, {}, 2, dist)
    assert list_checkpoints(run) == [path] and read_meta(path)["sharded"] is True
    plain = build_model(ModelConfig(vocab_size=32, d_model=16, n_layers=2, n_heads=2))
    checkpoint_module.load_weights(path, plain)
    expected = {k: v.full_tensor() for k, v in model.state_dict().items()}
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in expected.items())


def test_a_child_takes_weights_and_moments_from_a_sharded_checkpoint(runs, tmp_path):
    """init.from_run on the fsdp run's step 4 (shards only), with init.optimizer: the weights
    and Adam's moments by parameter name, as the single-process parent's step 4 holds them by
    index; the child's own lr stays."""
    child = _config(
        tmp_path / "runs",
        "name=child",
        *SHAPE,
        f"init.from_run={runs['fsdp']}",
        "init.step=4",
        "init.optimizer=true",
        "optimizer.lr=0.01",
    )
    engine = Pretraining(child, DistContext(0, 1, 0, torch.device("cpu")), False).engine
    _assert_weights_close(engine.model.state_dict(), _weights(checkpoint_dir(runs["single"], 4)))
    state = engine.optimizer.state_dict()
    saved = load_train_state(checkpoint_dir(runs["single"], 4))["optimizer"]
    assert state["state"].keys() == saved["state"].keys()
    for index, moments in saved["state"].items():
        assert int(state["state"][index]["step"]) == 4
        for name in ("exp_avg", "exp_avg_sq"):
            loaded = state["state"][index][name]
            assert torch.allclose(
                loaded, moments[name], rtol=0, atol=MOMENT_ATOL * moments[name].abs().max()
            )
    assert {g["initial_lr"] for g in state["param_groups"]} == {0.01}
