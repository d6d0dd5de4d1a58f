"""Answer-only loss masks, full and LoRA fine-tuning on a copy, and the QA fine-tuning protocol."""

from __future__ import annotations

import pytest
import torch

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate.finetune import FinetuneSettings, finetune
from transferlab.models import build_model
from transferlab.objectives import IGNORE_INDEX, answer_loss_batch
from transferlab.worlds import BiosConfig, BiosWorld

X = IGNORE_INDEX


def test_loss_is_taken_on_answer_and_eos_positions_only() -> None:
    pairs = [([1, 10, 11], [20, 2]), ([1, 12], [21, 22, 2]), ([1], [30, 2])]
    inputs, targets = answer_loss_batch(pairs, pad_id=0)
    assert inputs.tolist() == [[1, 10, 11, 20], [1, 12, 21, 22], [1, 30, 0, 0]]
    assert targets.tolist() == [[X, X, 20, 2], [X, 21, 22, 2], [30, 2, X, X]]


def test_empty_answer_is_rejected() -> None:
    with pytest.raises(ValueError, match="pair 0 has an empty prompt or answer"):
        answer_loss_batch([([1, 5], [])], pad_id=0)


def _tiny_model(vocab: int = 24) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2))


PAIRS = [([1, 4 + i, 5 + i], [10 + i, 2]) for i in range(6)]


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


def _assert_same(model: torch.nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert state.keys() == snapshot.keys()
    assert all(torch.equal(state[name], snapshot[name]) for name in snapshot)


def test_full_finetune_trains_a_copy_deterministically() -> None:
    model = _tiny_model()
    before = _snapshot(model)
    settings = FinetuneSettings(steps=20, batch_size=4, lr=1e-2, warmup_fraction=0.1)
    first = finetune(model, PAIRS, settings, seed=3)
    _assert_same(model, before)
    assert first.losses[-1] < 0.5 * first.losses[0]
    again = finetune(model, PAIRS, settings, seed=3)
    assert again.losses == first.losses
    other = finetune(model, PAIRS, settings, seed=4)
    assert other.losses != first.losses  # the seed orders the batches


def test_lora_trains_only_the_adapters() -> None:
    model = _tiny_model()
    before = _snapshot(model)
    rng_state = torch.get_rng_state()
    settings = FinetuneSettings(steps=10, batch_size=4, lr=1e-2, method="lora", lora_r=4)
    result = finetune(model, PAIRS, settings, seed=0)
    _assert_same(model, before)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the adapters' init left it alone
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    # 4 targets per block (qkv, out, gate_up, down), an A and a B matrix each.
    assert len(trainable) == 8
    for name, param in result.model.named_parameters():
        if name in trainable:
            if ".lora_B." in name:  # starts at zero; training moved it
                assert param.abs().sum() > 0
            continue
        base_name = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert torch.equal(param, before[base_name]), name
    assert result.losses[-1] < result.losses[0]


def test_lora_with_unknown_targets_fails_clearly() -> None:
    settings = FinetuneSettings(steps=1, batch_size=2, lr=1e-2, method="lora", lora_targets=("wq",))
    with pytest.raises(ValueError, match=r"LoRA targets \['wq'\] match no nn.Linear"):
        finetune(_tiny_model(), PAIRS, settings, seed=0)


@pytest.fixture(scope="module")
def bios() -> tuple[BiosWorld, TextTokenizer]:
    world = BiosConfig(num_people=20, seed=1).build()
    qa = [f"{item.question} {item.answer}" for item in world.qa_items()]
    return world, train_tokenizer(TokenizerConfig(), world.documents() + qa)


def test_qa_finetune_learns_the_train_questions(bios: tuple[BiosWorld, TextTokenizer]) -> None:
    world, tokenizer = bios
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(vocab_size=tokenizer.vocab_size, d_model=64, n_layers=2, n_heads=4)
    )
    untrained = TASKS.parse({"name": "qa_finetune", "eval_splits": ["train"]}).build()
    before = untrained.evaluate(model, tokenizer, world, "r0")
    cfg = TASKS.parse(
        {"name": "qa_finetune", "steps": 150, "lr": 3e-3, "eval_splits": ["train", "test"]}
    )
    rows = cfg.build().run(model, tokenizer, world, "r0", seed=0)
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == 6 * 10 and len(rows) == 6 * 20
    assert sum(r["correct"] for r in before) == 0
    accuracy = sum(r["correct"] for r in train) / len(train)
    assert accuracy > 0.5
    # Exact match means the prediction is the answer, and a learned answer is a likely one.
    for row in train:
        assert row["correct"] == float(row["prediction"] == row["target"])
    mean_p = sum(r["p_correct"] for r in train) / len(train)
    assert mean_p > sum(r["p_correct"] for r in before) / len(before) + 0.3


# ----------------------------------------------------------------------------- on the engine
def _crash_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the engine raise once it has completed ``step`` steps (a killed fine-tuning)."""
    from transferlab.train.engine import Engine

    real = Engine.train_step

    def crashing(self):
        if self.step == step:
            raise RuntimeError("killed")
        return real(self)

    monkeypatch.setattr(Engine, "train_step", crashing)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_killed_finetune_resumes_from_its_run_dir_bit_for_bit(tmp_path, monkeypatch, method):
    settings = FinetuneSettings(
        steps=10, batch_size=4, lr=1e-2, method=method, lora_r=4, checkpoint_interval=3
    )
    whole = finetune(_tiny_model(), PAIRS, settings, seed=3)
    with monkeypatch.context() as patch:
        _crash_at(patch, 7)
        with pytest.raises(RuntimeError, match="killed"):
            finetune(_tiny_model(), PAIRS, settings, seed=3, run_dir=tmp_path)
    resumed = finetune(_tiny_model(), PAIRS, settings, seed=3, run_dir=tmp_path)
    assert resumed.losses == whole.losses[6:]  # steps 7-10 ran again from the step-6 checkpoint
    _assert_same(resumed.model, _snapshot(whole.model))
    rows = [r["step"] for r in resumed.metrics]
    from transferlab.train import read_metrics

    logged = [
        {k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")}
        for r in read_metrics(tmp_path / "metrics.jsonl")
    ]
    assert [r["step"] for r in logged] == [10] and rows == [10]  # log_interval=10
    assert logged[0]["train_loss"] == pytest.approx(sum(whole.losses) / 10)


def test_a_run_dir_of_another_finetune_is_refused(tmp_path):
    settings = FinetuneSettings(steps=4, batch_size=4, lr=1e-2, checkpoint_interval=2)
    finetune(_tiny_model(), PAIRS, settings, seed=3, run_dir=tmp_path)
    other = FinetuneSettings(steps=4, batch_size=4, lr=2e-2, checkpoint_interval=2)
    with pytest.raises(ValueError, match="holds checkpoints of another fine-tuning"):
        finetune(_tiny_model(), PAIRS, other, seed=3, run_dir=tmp_path)


def test_any_registered_optimizer_and_schedule_drive_the_finetune():
    from transferlab.optim import AdamWConfig
    from transferlab.optim.schedules import ConstantConfig

    settings = FinetuneSettings(
        steps=6,
        batch_size=4,
        lr=1.0,  # ignored: the optimizer config replaces the shorthand fields
        optimizer=AdamWConfig(lr=5e-3, weight_decay=0.0),
        schedule=ConstantConfig(warmup_steps=2),
        log_interval=1,
    )
    result = finetune(_tiny_model(), PAIRS, settings, seed=0)
    assert [row["lr"] for row in result.metrics] == [2.5e-3, 5e-3, 5e-3, 5e-3, 5e-3, 5e-3]


def test_accumulation_gives_the_same_finetune_up_to_rounding():
    plain = FinetuneSettings(steps=5, batch_size=4, lr=1e-2)
    accumulated = FinetuneSettings(steps=5, batch_size=4, lr=1e-2, micro_batch_size=1)
    a = finetune(_tiny_model(), PAIRS, plain, seed=1)
    b = finetune(_tiny_model(), PAIRS, accumulated, seed=1)
    assert b.losses == pytest.approx(a.losses, rel=1e-5)
    with pytest.raises(ValueError, match="micro_batch_size=3 must divide batch_size=4"):
        finetune(_tiny_model(), PAIRS, FinetuneSettings(4, 4, 1e-2, micro_batch_size=3), seed=1)
