"""The engine's open seams: an objective and a callback registered from outside the package
train end to end through the same loop (aux losses and metrics logged by name, hooks called in
order, their state resumed exactly), and the stability signals measure what they name."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import pytest
import torch

from transferlab.config import CALLBACKS, OBJECTIVES, CallbackConfig, ObjectiveConfig
from transferlab.config.schemas import ModelConfig
from transferlab.models import build_model
from transferlab.models.parts.base import Context
from transferlab.objectives import IGNORE_INDEX, Batch, LossOutput, Objective
from transferlab.objectives.base import token_prediction_loss
from transferlab.train import load_run, read_metrics, train
from transferlab.train.callbacks.stability import (
    StabilityCallback,
    StabilityConfig,
    mean_log_partition,
)
from transferlab.train.checkpoint import load_train_state
from transferlab.train.engine import Callback, Engine, StepOutput

TIMING = ("tokens_per_s", "elapsed_s")


# ----------------------------------------------------------------------------- an outside objective
class SkipTokenLM(Objective):
    """Predict the token two ahead (not next): a toy objective with an aux loss and a metric."""

    attention = "causal"

    def __init__(self, pad_id: int, z_weight: float) -> None:
        self.pad_id = pad_id
        self.z_weight = z_weight

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        inputs = source[:, :-1]
        targets = torch.full_like(inputs, IGNORE_INDEX)
        targets[:, :-1] = source[:, 2:]
        targets[targets == self.pad_id] = IGNORE_INDEX
        return {"inputs": inputs, "targets": targets}

    def n_targets(self, batch: Batch) -> int:
        return int((batch["targets"] != IGNORE_INDEX).sum())

    def loss(self, model: torch.nn.Module, batch: Batch) -> LossOutput:
        out = token_prediction_loss(model, batch["inputs"], batch["targets"], "causal")
        # A fake z-loss: a differentiable sum over targets, logged as its mean per target.
        out.aux["z_loss"] = self.z_weight * out.sum
        out.metrics["target_count"] = torch.tensor(float(out.n_targets))
        return out


@OBJECTIVES.register("test_skip_token")
class SkipTokenConfig(ObjectiveConfig):
    name: Literal["test_skip_token"] = "test_skip_token"
    attention: ClassVar[str] = "causal"
    z_weight: float = 0.01

    def build(self, special: Any, vocab_size: int, text: Any = None) -> SkipTokenLM:
        return SkipTokenLM(special.pad, self.z_weight)


def test_an_objective_registered_outside_the_package_trains_end_to_end(tiny_config):
    result = train(tiny_config("objective={name: test_skip_token, z_weight: 0.5}"))
    rows = read_metrics(result.run_dir / "metrics.jsonl")
    # The aux loss and the metric are logged by name, per target of the global batch.
    assert all(row["z_loss"] == pytest.approx(0.5 * row["train_loss"], rel=1e-6) for row in rows)
    assert all(row["target_count"] == 1.0 for row in rows)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    # The validation loss is the main loss of the objective's own batches (no aux in it).
    assert rows[-1]["val_loss"] == result.val_loss and result.val_loss > 0
    assert load_run(result.run_dir).config.objective.name == "test_skip_token"


def test_an_outside_objective_resumes_bit_for_bit(tiny_config):
    cfg = tiny_config("objective=test_skip_token", "trainer.callbacks=[{name: test_recorder}]")
    whole = train(cfg.model_copy(update={"name": "whole"}))
    part_cfg = cfg.model_copy(update={"name": "part"})
    assert train(part_cfg, stop_after=3).interrupted
    resumed = train(part_cfg, resume=True)
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in _metrics(whole)]
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in _metrics(resumed)] == strip
    for (name, x), (_, y) in zip(
        load_run(whole.run_dir).model.state_dict().items(),
        load_run(resumed.run_dir).model.state_dict().items(),
        strict=True,
    ):
        assert torch.equal(x, y), name


def _metrics(result) -> list[dict]:
    return read_metrics(result.run_dir / "metrics.jsonl")


# ----------------------------------------------------------------------------- an outside callback
class Recorder(Callback):
    """Records the hooks it sees; adds a field to the row of every third step."""

    name = "test_recorder"
    calls: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.steps_seen = 0

    def on_train_start(self, engine: Engine) -> None:
        self.calls.append(f"start@{engine.step}")

    def on_step_start(self, engine: Engine) -> None:
        self.calls.append(f"step_start@{engine.step}")

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        self.steps_seen += 1
        self.calls.append(f"step_end@{engine.step}")
        if engine.step % 3 == 0:
            engine.row["recorded"] = self.steps_seen

    def on_train_end(self, engine: Engine) -> None:
        self.calls.append(f"end@{engine.step}")

    def state_dict(self) -> dict[str, Any]:
        return {"steps_seen": self.steps_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_seen = int(state["steps_seen"])


@CALLBACKS.register("test_recorder")
class RecorderConfig(CallbackConfig):
    name: Literal["test_recorder"] = "test_recorder"

    def build(self) -> Recorder:
        return Recorder()


def test_a_registered_callback_runs_on_every_hook_in_order_and_its_state_resumes(tiny_config):
    Recorder.calls.clear()
    cfg = tiny_config(
        "trainer.callbacks=[{name: test_recorder}]",
        "trainer.log_interval=100",
        "trainer.max_steps=6",
    )
    assert train(cfg, stop_after=4).interrupted
    assert Recorder.calls == [
        "start@0",
        *[f"step_{hook}@{s + (hook == 'end')}" for s in range(4) for hook in ("start", "end")],
        "end@4",
    ]
    result = train(cfg, resume=True)
    state = load_train_state(result.checkpoint)
    assert state["callbacks"]["test_recorder"] == {"steps_seen": 6}
    rows = read_metrics(result.run_dir / "metrics.jsonl")
    # log_interval=100: rows exist only where a callback added a field (validation at 4 and 6,
    # the recorder at 3 and 6); the recorder's count survived the resume.
    assert [(r["step"], r.get("recorded"), "val_loss" in r) for r in rows] == [
        (3, 3, False),
        (4, None, True),
        (6, 6, True),
    ]


def test_an_unknown_callback_is_refused_in_one_line(tiny_config):
    from transferlab.config import ConfigError

    with pytest.raises(
        ConfigError, match=r"unknown callback 'nope'; expected one of \[.*stability"
    ):
        tiny_config("trainer.callbacks=[{name: nope}]")


# ----------------------------------------------------------------------------- stability signals
def _model(seed: int = 0, **fields: Any) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, **fields))


@pytest.mark.parametrize("qk_norm", [False, True])
@torch.no_grad()
def test_attention_logits_reproduce_the_attention_output(qk_norm):
    """softmax(logits) @ v, projected, is exactly what the attention part computes: so the
    logits whose maximum is logged are the ones attention really uses."""
    model = _model(qk_norm=qk_norm)
    attn = model.blocks[1].attn
    x = model.blocks[1].attn_norm(torch.randn(2, 9, 32, generator=torch.Generator().manual_seed(3)))
    ctx = Context(model.rope_cos[:9, None, :], model.rope_sin[:9, None, :], None, True)
    logits = attn.attention_logits(x, ctx)
    assert logits.shape == (2, 4, 9, 9)
    assert torch.isinf(logits[..., 0, 1:]).all()  # the first query sees only itself
    v = attn.qkv(x).view(2, 9, 3, 4, 8).unbind(2)[2].transpose(1, 2)
    mixed = (logits.softmax(-1) @ v).transpose(1, 2).reshape(2, 9, 32)
    torch.testing.assert_close(attn.out(mixed), attn(x, ctx))


@torch.no_grad()
def test_mean_log_partition_is_the_logsumexp_of_the_logits():
    model = _model()
    ids = torch.randint(0, 40, (3, 7), generator=torch.Generator().manual_seed(1))
    expected = torch.logsumexp(model(ids), dim=-1).flatten()
    out = model(ids, output="features")
    assert mean_log_partition(out, 100) == pytest.approx(float(expected.mean()), rel=1e-6)
    assert mean_log_partition(out, 5) == pytest.approx(float(expected[:5].mean()), rel=1e-6)


class _Row:
    def __init__(self) -> None:
        self.row: dict[str, Any] = {}


def test_gradient_norm_spikes_are_counted_against_the_moving_average():
    callback = StabilityCallback(StabilityConfig(spike_factor=3.0, ema_decay=0.5))
    engine = _Row()
    for norm in (1.0, 1.0, 2.9, 10.0):
        engine.row = {}
        callback._track_grad_norm(engine, norm)
    # EMA before the last step: 1, 1, then 0.5 * 1 + 0.5 * 2.9 = 1.95; 10 > 3 * 1.95.
    assert engine.row == {"grad_spike": pytest.approx(10 / 1.95), "grad_spikes": 1}
    assert callback.grad_ema == pytest.approx(0.5 * 1.95 + 0.5 * 10)


def test_stability_signals_are_logged_every_n_steps(tiny_config):
    cfg = tiny_config("trainer.callbacks=[{name: stability, every: 2}]", "trainer.log_interval=100")
    rows = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert all({"attn_logit_max_l0", "attn_logit_max", "log_z_mean"} <= set(r) for r in rows)
    assert rows[0]["log_z_drift"] == 0.0 and rows[-1]["log_z_drift"] != 0.0
    # Each update moves the weights by a small fraction of their size.
    assert all(0 < r["update_rms_ratio_mean"] <= r["update_rms_ratio_max"] < 1 for r in rows)
    assert all(math.isfinite(r["attn_logit_max"]) for r in rows)
