"""A model trained with prefix_lm, span_corruption or ul2 is trained and read with prefix
attention: the loss reaches the model with each row's prefix, its run's tokenizer knows the
added tokens, and the tasks that read prefix models score and probe it as a prefix LM."""

from __future__ import annotations

import pytest
import torch

from transferlab.config.registry import TASKS
from transferlab.data.tokenizer import SpecialTokenIds, TextTokenizer
from transferlab.evaluate import QaScoreConfig, build_requests
from transferlab.models import build_model
from transferlab.objectives import IGNORE_INDEX
from transferlab.train import load_run, train

DENOISERS = ["prefix_lm", "span_corruption", "ul2"]
SPECIAL = SpecialTokenIds(pad=0, bos=1, eos=2, mask=3)


@pytest.mark.parametrize("name", DENOISERS)
def test_the_loss_is_the_cross_entropy_of_the_targets_under_each_rows_prefix(tiny_config, name):
    # Two layers: in one, a position after the prefix sees the same embeddings either way.
    cfg = tiny_config(f"objective={name}", "model.n_layers=2")
    vocab = 40
    model_cfg = cfg.model.model_copy(
        update={"vocab_size": vocab + len(cfg.objective.added_tokens())}
    )
    torch.manual_seed(0)
    model = build_model(model_cfg)
    with torch.no_grad():  # the initialization zeroes residual outputs: attention would not show
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    objective = cfg.objective.build(SPECIAL, vocab)
    window = torch.randint(4, vocab, (4, 33), generator=torch.Generator().manual_seed(0))
    batch = objective.make_batch(window, torch.Generator().manual_seed(1))
    out = objective.loss(model, batch)
    with torch.no_grad():
        logits = model(batch["inputs"], attention="prefix", prefix_len=batch["prefix_len"])
        causal = model(batch["inputs"])
    expected = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    assert out.n_targets == int((batch["targets"] != IGNORE_INDEX).sum()) > 0
    assert float(out.sum.detach()) == pytest.approx(float(expected), rel=1e-5)
    # Read causally, the same batch gives another loss: the prefix is really bidirectional.
    other = torch.nn.functional.cross_entropy(
        causal.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    assert abs(float(other) - float(expected)) > 1e-3


def _prefix_logprob(model, context: list[int], choice: list[int]) -> float:
    """log p(choice | context) with the context as the bidirectional prefix, one sequence."""
    seq = torch.tensor([context + choice])
    logits = model(seq, attention="prefix", prefix_len=torch.tensor([len(context)]))
    logp = logits[0].double().log_softmax(-1)
    positions = range(len(context) - 1, len(seq[0]) - 1)
    return sum(float(logp[p, seq[0, p + 1]]) for p in positions)


@pytest.mark.parametrize("name", DENOISERS)
def test_a_trained_run_is_scored_and_probed_as_a_prefix_lm(tiny_config, name):
    cfg = tiny_config(f"objective={name}", "trainer.max_steps=4", f"name={name}")
    run = train(cfg)
    loaded = load_run(run.run_dir)
    tokenizer = TextTokenizer.from_file(loaded.tokenizer_path)
    added = cfg.objective.added_tokens()
    assert loaded.config.model.vocab_size == tokenizer.vocab_size
    for i, token in enumerate(added):
        assert tokenizer.token_to_id(token) == tokenizer.vocab_size - len(added) + i
    world = loaded.config.world.build()
    reading = loaded.config.objective.attention
    assert reading == "prefix"

    score = {"name": "qa_score", "n_choices": 4, "attributes": ["birth_city"]}
    rows = TASKS.parse(score).build().run(loaded.model, tokenizer, world, "r", 0, reading)
    examples = build_requests(QaScoreConfig(**score), world, tokenizer, 0)
    assert [row["example_id"] for row in rows] == [ex.item.id for ex in examples]
    with torch.no_grad():
        for row, example in zip(rows, examples, strict=True):
            context, choices = example.request
            scores = [_prefix_logprob(loaded.model, list(context), list(c)) for c in choices]
            p_gold = torch.tensor(scores).softmax(0)[example.gold]
            assert row["p_correct"] == pytest.approx(float(p_gold), abs=1e-5)

    # A probe reads a prefix model with the whole sequence as the prefix: bidirectionally.
    probe = {"name": "qa_probe", "attributes": ["birth_city"]}
    prefix_rows = TASKS.parse(probe).build().run(loaded.model, tokenizer, world, "r", 0, reading)
    both = TASKS.parse(probe).build().run(loaded.model, tokenizer, world, "r", 0, "bidirectional")
    assert len(prefix_rows) == len(rows) and prefix_rows == both
