"""Readers: pseudo-log-likelihood, prefix scoring and features equal explicit per-sequence loops,
whatever the batching, and a task refuses a model it cannot read before any work."""

from __future__ import annotations

import random

import pytest
import torch

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import SpecialTokenIds, train_tokenizer
from transferlab.evaluate import qa_finetune, readers
from transferlab.evaluate.readers import Reader
from transferlab.models import build_model
from transferlab.worlds import BiosConfig

VOCAB = 40
SPECIAL = SpecialTokenIds()
Requests = list[tuple[list[int], list[list[int]]]]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    # A larger init makes the distribution far from uniform, so mistakes would show.
    cfg = ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=2, init_std=0.3)
    return build_model(cfg)


def _requests(seed: int) -> Requests:
    """Contexts of 1..9 tokens and choices of 1..4 tokens: many lengths in one batch."""
    rng = random.Random(seed)
    requests = []
    for _ in range(7):
        context = [SPECIAL.bos] + [rng.randrange(4, VOCAB) for _ in range(rng.randrange(0, 9))]
        choices = [
            [rng.randrange(4, VOCAB) for _ in range(rng.randrange(1, 5))]
            for _ in range(rng.randrange(1, 5))
        ]
        requests.append((context, choices))
    return requests


def _explicit_pll(model: torch.nn.Module, context: list[int], choice: list[int]) -> float:
    """Mask each choice token in turn in the unpadded sequence and sum log p(token)."""
    total = 0.0
    for k, token in enumerate(choice):
        pos = len(context) + k
        ids = [*context, *choice]
        ids[pos] = SPECIAL.mask
        with torch.no_grad():
            logits = model(torch.tensor([ids]), attention="bidirectional")
        total += float(logits[0, pos].double().log_softmax(-1)[token])
    return total


def _explicit_prefix(model: torch.nn.Module, context: list[int], choice: list[int]) -> float:
    """log p(choice | context) with the context as the prefix, on the unpadded sequence."""
    ids = torch.tensor([[*context, *choice]])
    with torch.no_grad():
        logits = model(ids, attention="prefix", prefix_len=torch.tensor([len(context)]))
    logprobs = logits[0].double().log_softmax(-1)
    return sum(float(logprobs[len(context) - 1 + k, t]) for k, t in enumerate(choice))


@pytest.mark.parametrize(
    ("attention", "explicit"), [("bidirectional", _explicit_pll), ("prefix", _explicit_prefix)]
)
@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_scores_equal_explicit_unpadded_loops(model, attention, explicit, batch_size) -> None:
    """batch_size 100 holds every sequence at once, mixing lengths: padding must not leak."""
    requests = _requests(0)
    scores = Reader(attention).score_choices(model, requests, SPECIAL, batch_size)
    assert [len(row) for row in scores] == [len(choices) for _, choices in requests]
    for (context, choices), row in zip(requests, scores, strict=True):
        for choice, value in zip(choices, row, strict=True):
            assert value == pytest.approx(explicit(model, context, choice), abs=1e-5)


def test_pll_and_prefix_scores_differ_from_causal_log_likelihood(model) -> None:
    requests = _requests(1)
    causal, pll, prefix = (
        torch.tensor(
            [s for row in Reader(kind).score_choices(model, requests, SPECIAL) for s in row]
        )
        for kind in ("causal", "bidirectional", "prefix")
    )
    assert (causal - pll).abs().max() > 0.5
    assert (causal - prefix).abs().max() > 0.5


def test_prefix_of_bos_alone_is_the_causal_likelihood(model) -> None:
    """What lets code_likelihood read prefix models: after <bos> alone, prefix is causal."""
    requests = [([SPECIAL.bos], choices) for _, choices in _requests(2)]
    causal = Reader("causal").score_choices(model, requests, SPECIAL)
    prefix = Reader("prefix").score_choices(model, requests, SPECIAL)
    for row_c, row_p in zip(causal, prefix, strict=True):
        assert row_p == pytest.approx(row_c, abs=1e-5)


def test_single_token_choices_share_one_masked_sequence(model) -> None:
    """Every single-token choice of a context masks the same sequence: one forward row, and
    the scores are the masked position's distribution (summing to one over the vocabulary)."""
    rows_seen = []

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, ids, **kwargs):
            rows_seen.append(ids.shape[0])
            return self.inner(ids, **kwargs)

    context = [SPECIAL.bos, 7, 9]
    scores = Reader("bidirectional").score_choices(
        Counting(), [(context, [[t] for t in range(VOCAB)])], SPECIAL
    )[0]
    assert rows_seen == [1]
    assert scores == pytest.approx([_explicit_pll(model, context, [t]) for t in range(VOCAB)])
    assert torch.tensor(scores).exp().sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("attention", ["bidirectional", "prefix"])
def test_features_equal_unpadded_bidirectional_forwards(model, attention, pooling) -> None:
    """Prefix features take the whole sequence as the prefix, so they are bidirectional too."""
    rng = random.Random(3)
    sequences = [
        [SPECIAL.bos] + [rng.randrange(4, VOCAB) for _ in range(n)] for n in (5, 0, 3, 5, 8, 2)
    ]
    layers = [0, 1, -1]
    features = Reader(attention).features(model, sequences, layers, pooling, batch_size=4)
    for n, seq in enumerate(sequences):
        with torch.no_grad():
            _, hidden = model(torch.tensor([seq]), attention="bidirectional", return_hidden=True)
        for slot, layer in enumerate(layers):
            states = hidden[layer][0]
            expected = states[-1] if pooling == "last" else states.mean(0)
            assert torch.allclose(features[slot, n], expected, atol=1e-5)
    causal = Reader("causal").features(model, sequences, layers, pooling, batch_size=4)
    assert (causal[-1] - features[-1]).abs().max() > 0.1


def test_an_unknown_reading_fails_clearly() -> None:
    with pytest.raises(ValueError, match=r"^reading 'sideways' is unknown; expected one of "):
        Reader("sideways")


def test_a_task_refuses_a_model_it_cannot_read_before_any_work(monkeypatch) -> None:
    def no_finetuning(*args, **kwargs):
        raise AssertionError("fine-tuning started")

    monkeypatch.setattr(qa_finetune, "finetune", no_finetuning)
    task = TASKS.parse({"name": "qa_finetune", "label": "ft"}).build()
    expected = (
        "task 'ft' cannot read this model: it is read with bidirectional attention and "
        "qa_finetune generates causally; use modular_answer or qa_classify or qa_probe or "
        "qa_reverse_score or qa_score, "
        "or an objective "
        "with causal "
        "or prefix attention"
    )
    with pytest.raises(ValueError) as error:
        task.run(None, None, None, "run", 0, reading="bidirectional")
    assert str(error.value) == expected
    with pytest.raises(ValueError, match="code_likelihood needs a likelihood for bits per byte"):
        TASKS.parse("code_likelihood").build().run(None, None, None, "run", 0, "bidirectional")


@pytest.mark.parametrize(
    ("task", "readings"),
    [
        ("qa_score", {"causal", "bidirectional", "prefix"}),
        ("qa_probe", {"causal", "bidirectional", "prefix", "discriminator"}),
        ("qa_classify", {"causal", "bidirectional", "prefix", "discriminator"}),
        ("code_function_name", {"causal", "bidirectional", "prefix"}),
        ("code_module", {"causal", "bidirectional", "prefix", "discriminator"}),
        ("qa_finetune", {"causal", "prefix"}),
        ("code_likelihood", {"causal", "prefix"}),
    ],
)
def test_each_task_declares_the_readings_it_supports(task: str, readings: set[str]) -> None:
    assert set(TASKS.get(task).readings) == readings


@pytest.mark.parametrize(
    ("task", "core"),
    [
        ({"name": "qa_score"}, "pseudo_log_likelihood"),
        ({"name": "qa_probe", "max_iter": 5}, "pooled_hidden"),
    ],
)
def test_tasks_score_and_probe_through_the_reading_they_are_given(monkeypatch, task, core):
    world = BiosConfig(num_people=8, seed=2).build()
    qa = [f"{item.question} {item.answer}\n" for item in world.qa_items()]
    tokenizer = train_tokenizer(TokenizerConfig(), world.documents() + qa)
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2))
    calls = []
    real = getattr(readers, core)

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(readers, core, spy)
    rows = TASKS.parse(task).build().run(model, tokenizer, world, "run", 0, "bidirectional")
    assert len(calls) == 1 and calls[0][0] is model
    if core == "pooled_hidden":
        assert calls[0][-1] == "bidirectional"  # the features' attention
    else:
        assert len(calls[0][1]) == len(rows)  # one request per example
