"""The training loop end to end on a tiny bios run: files, metrics, checkpoints, loss
normalization under gradient accumulation, divergence, and loading a run back."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from transferlab.config import ConfigError, TrainerConfig
from transferlab.data import prepare_data
from transferlab.train import TrainingDiverged, latest_checkpoint, load_run, read_metrics, train
from transferlab.train.batching import plan_batches
from transferlab.train.checkpoint import (
    checkpoint_step,
    list_checkpoints,
    read_meta,
    read_run_config,
)
from transferlab.train.trainer import resolve_model_vocab

ROW_FIELDS = {"step", "tokens", "train_loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"}


def _rel_diff(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_run_writes_config_tokenizer_metrics_run_info_and_checkpoints(tiny_config):
    cfg = tiny_config("trainer.keep_checkpoints=1")
    result = train(cfg)
    run = result.run_dir
    data = prepare_data(cfg)

    assert run == Path(cfg.trainer.out_dir) / "tiny"
    assert (result.steps, result.tokens, result.interrupted) == (8, 8 * 8 * 32, False)
    # config.yaml is the resolved config: the given one with the tokenizer's vocab size.
    assert read_run_config(run) == resolve_model_vocab(cfg, data.vocab_size)
    assert (run / "tokenizer.json").read_bytes() == data.tokenizer_path.read_bytes()
    recorded = json.loads((run / "run_info.json").read_text())["tokenizer_sha256"]
    assert recorded == hashlib.sha256(data.tokenizer_path.read_bytes()).hexdigest()

    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(set(r) - {"val_loss"} == ROW_FIELDS for r in rows)
    assert [r["step"] for r in rows if "val_loss" in r] == [4, 8]
    assert [r["tokens"] for r in rows] == [s * 256 for s in range(1, 9)]
    fn = cfg.schedule.build(8)
    assert [r["lr"] for r in rows] == [cfg.optimizer.lr * fn(s) for s in range(8)]
    assert rows[-1]["train_loss"] == result.train_loss
    assert rows[-1]["val_loss"] == result.val_loss
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]

    # keep_checkpoints=1: only the final one survives.
    assert [checkpoint_step(p) for p in list_checkpoints(run)] == [8]
    assert result.checkpoint == latest_checkpoint(run)
    meta = read_meta(result.checkpoint)
    assert meta["step"] == 8 and meta["tokens"] == result.tokens

    info = json.loads((run / "run_info.json").read_text())
    model = load_run(run).model
    assert info["params_total"] == result.params_total == sum(p.numel() for p in model.parameters())
    assert info["params_non_embedding"] == result.params_non_embedding == model.num_parameters()
    assert result.flops_per_token > 6 * result.params_non_embedding
    assert info["world_size"] == 1 and info["accumulation_steps"] == 1


def test_a_second_run_in_the_same_dir_needs_resume(tiny_config):
    train(tiny_config("trainer.max_steps=4"))
    with pytest.raises(ConfigError, match=r"already has checkpoints; pass --resume"):
        train(tiny_config("trainer.max_steps=4"))


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_gradient_accumulation_matches_the_full_batch(tiny_config, objective):
    """Micro batches of 2 (4 accumulation steps) give the losses of one batch of 8 up to float
    rounding (rel. 1e-5, seen: ~1e-7). With mlm the micro batches hold different numbers of loss
    tokens: averaging each micro batch's loss on its own moves the first gradient norm by ~2%."""
    full = train(tiny_config(f"objective={objective}", "name=full"))
    accum = train(tiny_config(f"objective={objective}", "name=accum", "trainer.micro_batch_size=2"))
    full_rows = read_metrics(full.run_dir / "metrics.jsonl")
    accum_rows = read_metrics(accum.run_dir / "metrics.jsonl")
    for a, b in zip(accum_rows, full_rows, strict=True):
        assert _rel_diff(a["train_loss"], b["train_loss"]) <= 1e-5
        assert _rel_diff(a["grad_norm"], b["grad_norm"]) <= 1e-5
    assert _rel_diff(accum.val_loss, full.val_loss) <= 1e-5
    info = json.loads((accum.run_dir / "run_info.json").read_text())
    assert info["accumulation_steps"] == 4


def test_batch_sizes_must_divide_among_processes():
    with pytest.raises(ConfigError, match=r"micro_batch_size: got 3; expected a divisor of"):
        plan_batches(TrainerConfig(batch_size=8, micro_batch_size=3), world_size=1)
    with pytest.raises(ConfigError, match=r"micro_batch_size: got 4; expected a divisor of .* = 2"):
        plan_batches(TrainerConfig(batch_size=4, micro_batch_size=4), world_size=2)
    with pytest.raises(ConfigError, match=r"batch_size: got 8; expected a multiple of the 3"):
        plan_batches(TrainerConfig(batch_size=8), world_size=3)
    plan = plan_batches(TrainerConfig(batch_size=8, micro_batch_size=2), world_size=2)
    assert (plan.micro_batch_size, plan.accumulation_steps) == (2, 2)
    plan = plan_batches(TrainerConfig(batch_size=8), world_size=2)
    assert (plan.micro_batch_size, plan.accumulation_steps) == (4, 1)


def test_an_explicit_model_vocab_must_cover_the_tokenizer(tiny_config):
    with pytest.raises(ConfigError, match="model.vocab_size: got 10; expected at least"):
        train(tiny_config("model.vocab_size=10"))
    padded = resolve_model_vocab(tiny_config("model.vocab_size=1000"), 472)
    assert padded.model.vocab_size == 1000
    assert resolve_model_vocab(tiny_config(), 472).model.vocab_size == 472


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_config):
    cfg = tiny_config("optimizer.lr=1e6", "trainer.checkpoint_interval=1")
    with pytest.raises(
        TrainingDiverged, match=r"became nan at step 2; the last good checkpoint is"
    ):
        train(cfg)
    run = cfg.trainer.out_dir + "/tiny"
    assert [checkpoint_step(p) for p in list_checkpoints(run)] == [1]
    model = load_run(run).model
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [r["step"] for r in read_metrics(f"{run}/metrics.jsonl")] == [1]


def test_nan_loss_names_the_step(tiny_config, monkeypatch):
    """A NaN loss (not only a NaN gradient) stops the run before its optimizer step."""
    from transferlab.train.engine import Engine

    real = Engine.micro_loss

    def poisoned(self, model, micro):
        out = real(self, model, micro)
        if self.step == 5:
            out.sum = out.sum * math.nan
        return out

    monkeypatch.setattr(Engine, "micro_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 6; .*step_00000004"):
        train(tiny_config())


def test_bf16_autocast_on_cpu_when_asked(tiny_config):
    fp32 = train(tiny_config("name=fp32", "trainer.max_steps=4"))
    bf16 = train(tiny_config("name=bf16", "trainer.max_steps=4", "trainer.precision=bf16"))
    info = json.loads((bf16.run_dir / "run_info.json").read_text())
    assert info["autocast"] == "torch.bfloat16"
    assert json.loads((fp32.run_dir / "run_info.json").read_text())["autocast"] is None
    assert bf16.train_loss != fp32.train_loss
    assert _rel_diff(bf16.train_loss, fp32.train_loss) < 1e-2


def test_load_run_returns_the_checkpointed_model(tiny_config):
    result = train(tiny_config())
    loaded = load_run(result.run_dir)
    assert loaded.step == 8 and not loaded.model.training
    assert loaded.tokenizer_path == result.run_dir / "tokenizer.json"
    assert loaded.config.model.vocab_size == prepare_data(loaded.config).vocab_size
    earlier = load_run(result.run_dir, step=4)
    assert earlier.step == 4
    assert not torch.equal(earlier.model.embed.weight, loaded.model.embed.weight)
    with pytest.raises(ValueError, match=r"has no checkpoint of step 5; .*steps \[4, 8\]"):
        load_run(result.run_dir, step=5)


@pytest.mark.slow  # inductor compiles C++ kernels: ~15-50 s on 2 cores
def test_torch_compile_matches_eager(tiny_config):
    eager = train(tiny_config("name=eager", "trainer.max_steps=4"))
    compiled = train(tiny_config("name=compiled", "trainer.max_steps=4", "trainer.compile=true"))
    assert _rel_diff(compiled.train_loss, eager.train_loss) <= 1e-4
    assert _rel_diff(compiled.val_loss, eager.val_loss) <= 1e-4
