"""Answer-only loss masks, full and LoRA fine-tuning on a copy, and the QA fine-tuning protocol."""

from __future__ import annotations

import pytest
import torch

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate.finetune import IGNORE, FinetuneSettings, finetune
from transferlab.models import build_model
from transferlab.objectives import answer_loss_batch
from transferlab.worlds import BiosConfig, BiosWorld

X = IGNORE


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
