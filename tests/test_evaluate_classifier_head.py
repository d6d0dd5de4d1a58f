"""Classification heads on pooled features, fine-tuned with the model under any reading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transferlab.config import ModelConfig
from transferlab.evaluate.classifier_head import (
    ClassifierModel,
    Classify,
    finetune_classifier,
    head_probabilities,
)
from transferlab.evaluate.finetune import FinetuneSettings
from transferlab.evaluate.readers import Reader
from transferlab.models import build_model
from transferlab.objectives import IGNORE_INDEX

X = IGNORE_INDEX
VOCAB = 24


def _model(vocab: int = VOCAB) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2))


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


# Two heads: the class of the token after <bos> (4 classes: ids 4-7), and whether the row's
# last token is even (2 classes); the second is unlabelled on every third example.
def _examples(n: int = 24) -> list[tuple[list[int], list[int]]]:
    examples = []
    for i in range(n):
        ids = [1, 4 + i % 4, *(8 + (i * 7 + j) % 10 for j in range(i % 3 + 1))]
        parity = ids[-1] % 2 if i % 3 else X
        examples.append((ids, [i % 4, parity]))
    return examples


@pytest.mark.parametrize(
    ("reading", "alone"),
    [
        ("causal", {}),
        ("bidirectional", {"attention": "bidirectional"}),
        ("prefix", {"attention": "prefix"}),
    ],
)
def test_each_padded_row_is_read_as_if_alone(reading, alone) -> None:
    model = _model().eval()
    rows = [[1, 5, 9, 11, 12], [1, 6], [1, 7, 10]]
    inputs = torch.zeros(3, 5, dtype=torch.long)
    for b, ids in enumerate(rows):
        inputs[b, : len(ids)] = torch.tensor(ids)
    lengths = torch.tensor([5, 2, 3])
    with torch.no_grad():
        hidden = Reader(reading).feature_forward(model, inputs, lengths).hidden
        for b, ids in enumerate(rows):
            extra = {"prefix_len": torch.tensor([len(ids)])} if reading == "prefix" else {}
            own = model(torch.tensor([ids]), output="features", **alone, **extra).hidden[0]
            assert torch.allclose(hidden[b, : len(ids)], own, atol=1e-5), (reading, b)
    # A bidirectional row's first position sees the tokens after it: not the causal state.
    causal = model(inputs, output="features").hidden
    assert (causal[0, 0] - hidden[0, 0]).abs().max() > 1e-3 or reading == "causal"


def test_heads_have_the_classes_shapes_and_start_uniform() -> None:
    model = _model()
    classifier = ClassifierModel(model, 32, [4, 2, 7], Reader("bidirectional"), "mean")
    assert [(h.in_features, h.out_features) for h in classifier.heads] == [
        (32, 4),
        (32, 2),
        (32, 7),
    ]
    probs = head_probabilities(classifier, [[1, 5, 6], [1, 9]], batch_size=1)
    assert [tuple(p.shape) for p in probs] == [(2, 4), (2, 2), (2, 7)]
    for p, k in zip(probs, [4, 2, 7], strict=True):
        assert torch.equal(p, torch.full_like(p, 1 / k))


def test_batches_pad_right_and_the_loss_sums_the_labelled_heads_only() -> None:
    objective = Classify(pad_id=0, reader=Reader("causal"))
    batch = objective.make_batch([([1, 5, 9], [2, X]), ([1, 6], [0, 1])], torch.Generator())
    assert batch["inputs"].tolist() == [[1, 5, 9], [1, 6, 0]]
    assert batch["lengths"].tolist() == [3, 2]
    assert batch["labels"].tolist() == [[2, X], [0, 1]]
    assert objective.n_targets(batch) == 3
    torch.manual_seed(1)
    classifier = ClassifierModel(_model(), 32, [4, 2], Reader("causal"), "last")
    for head in classifier.heads:
        torch.nn.init.normal_(head.weight)
    out = objective.loss(classifier, batch)
    logits = classifier(batch["inputs"], batch["lengths"]).logits
    expected = (
        F.cross_entropy(logits[0][0], torch.tensor(2), reduction="sum")
        + F.cross_entropy(logits[0][1], torch.tensor(0), reduction="sum")
        + F.cross_entropy(logits[1][1], torch.tensor(1), reduction="sum")
    )
    assert out.n_targets == 3
    assert float(out.sum.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_the_whole_model_and_the_heads_train_on_a_copy_deterministically() -> None:
    model = _model()
    before = _snapshot(model)
    settings = FinetuneSettings(steps=30, batch_size=8, lr=1e-2)
    reader = Reader("bidirectional")
    first = finetune_classifier(model, _examples(), [4, 2], reader, "mean", settings, seed=3)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    tuned = first.model.state_dict()
    assert {k.removeprefix("model.") for k in tuned if k.startswith("model.")} == set(before)
    moved = [k for k, v in before.items() if not torch.equal(tuned[f"model.{k}"], v)]
    assert sorted(moved) == sorted(before)  # every weight of the model trained
    assert all(p.requires_grad for p in first.model.parameters())
    assert first.losses[-1] < 0.5 * first.losses[0]
    again = finetune_classifier(model, _examples(), [4, 2], reader, "mean", settings, seed=3)
    assert again.losses == first.losses
    other = finetune_classifier(model, _examples(), [4, 2], reader, "mean", settings, seed=4)
    assert other.losses != first.losses
    probs = head_probabilities(first.model, [ids for ids, _ in _examples()])
    accuracy = (probs[0].argmax(-1) == torch.tensor([i % 4 for i in range(24)])).float().mean()
    assert accuracy == 1.0


def test_lora_trains_the_adapters_and_the_heads_only() -> None:
    model = _model()
    settings = FinetuneSettings(steps=5, batch_size=8, lr=1e-2, method="lora", lora_r=4)
    result = finetune_classifier(
        model, _examples(), [4, 2], Reader("causal"), "last", settings, seed=0
    )
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    heads = {f"heads.{h}.{w}" for h in (0, 1) for w in ("weight", "bias")}
    assert heads <= trainable
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable - heads)
    assert len(trainable - heads) == 8  # qkv, out, gate_up, down: an A and a B each


def test_labels_that_do_not_fit_the_heads_are_refused() -> None:
    settings = FinetuneSettings(steps=1, batch_size=2, lr=1e-2)
    reader = Reader("causal")
    for labels in ([4, 0], [0], [0, -1]):
        with pytest.raises(ValueError, match=r"do not fit heads of \[4, 2\] classes"):
            finetune_classifier(_model(), [([1, 5], labels)], [4, 2], reader, "last", settings, 0)
    with pytest.raises(ValueError, match="no training examples"):
        finetune_classifier(_model(), [], [4, 2], reader, "last", settings, 0)


def test_a_killed_classifier_finetune_resumes_bit_for_bit(tmp_path, monkeypatch) -> None:
    from transferlab.train.engine import Engine

    settings = FinetuneSettings(steps=8, batch_size=8, lr=1e-2, checkpoint_interval=3)
    args = (_examples(), [4, 2], Reader("prefix"), "mean", settings)
    whole = finetune_classifier(_model(), *args, seed=5)
    real = Engine.train_step

    def killed(self):
        if self.step == 4:
            raise RuntimeError("killed")
        return real(self)

    with monkeypatch.context() as patch:
        patch.setattr(Engine, "train_step", killed)
        with pytest.raises(RuntimeError, match="killed"):
            finetune_classifier(_model(), *args, seed=5, run_dir=tmp_path)
    resumed = finetune_classifier(_model(), *args, seed=5, run_dir=tmp_path)
    assert resumed.losses == whole.losses[3:]  # from the step-3 checkpoint
    state = whole.model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in resumed.model.state_dict().items())
    with pytest.raises(ValueError, match="holds checkpoints of another fine-tuning"):
        finetune_classifier(_model(), *args[:3], "last", settings, seed=5, run_dir=tmp_path)
