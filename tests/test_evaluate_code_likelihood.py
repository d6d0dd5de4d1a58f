"""``code_likelihood``: bits per byte of held-out functions, exact under a uniform model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import train_tokenizer
from transferlab.evaluate import IDENTITY_COLUMNS
from transferlab.evaluate.code_tasks import pretraining_documents, split_functions
from transferlab.evaluate.likelihood import bits_per_byte
from transferlab.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::transferlab.data.sources.SkippedDocumentsWarning")

CFG = {"name": "code_likelihood", "modules": ["email", "json"], "heldout_fraction": 0.5}


class Uniform(nn.Module):
    """Equal logits everywhere: every token costs exactly log(vocab) nats."""

    def __init__(self, vocab: int, max_seq_len: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.config = SimpleNamespace(max_seq_len=max_seq_len)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*ids.shape, self.vocab) + self.anchor


@pytest.fixture(scope="module")
def tokenizer():
    cfg = TASKS.parse(CFG)
    texts = (doc.text for doc in pretraining_documents(cfg, split="function"))
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=400), texts)


def test_uniform_model_costs_log2_vocab_bits_per_token_of_the_scored_prefix(tokenizer) -> None:
    cfg = TASKS.parse({**CFG, "max_tokens": 64, "max_examples": 40})
    model = Uniform(tokenizer.vocab_size, max_seq_len=48)  # lowers the budget to 48 tokens
    rows = cfg.build().run(model, tokenizer, None, "run0", seed=7)
    heldout = {doc.id: doc for doc in split_functions(cfg).heldout}
    # bits per byte is the one metric, stored as it is (no accuracy, no probability).
    assert len(rows) == 40 and all(tuple(r) == (*IDENTITY_COLUMNS, "bits_per_byte") for r in rows)
    for row in rows:
        doc = heldout[row["example_id"]]  # only held-out functions are examples
        ids = tokenizer.encode(doc.text)[:47]  # <bos> takes one of the 48 positions
        n_bytes = len(tokenizer.decode(ids).encode("utf-8"))
        expected = len(ids) * math.log2(tokenizer.vocab_size) / n_bytes
        assert row["bits_per_byte"] == pytest.approx(expected, rel=1e-5)
        assert row["group"] == doc.metadata["module"].split(".")[0]
        assert row["target"] == doc.metadata["name"] and row["task"] == "code_likelihood"
    truncated = [r for r in rows if len(tokenizer.encode(heldout[r["example_id"]].text)) > 47]
    assert truncated  # the budget cut some functions, and they were still scored exactly


def test_examples_are_the_same_for_every_model_and_a_trained_model_beats_uniform(
    tokenizer,
) -> None:
    cfg = TASKS.parse({**CFG, "max_tokens": 32, "max_examples": 30})
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2)
    )
    texts = [tokenizer.encode(d.text)[:64] for d in pretraining_documents(cfg, "function")]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = torch.tensor([t + [tokenizer.special.pad] * (64 - len(t)) for t in texts[:64]])
    for _ in range(60):  # a few steps on pretraining-side code
        logits = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(
            logits.transpose(1, 2), batch[:, 1:], ignore_index=tokenizer.special.pad
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = cfg.build().run(model.eval(), tokenizer, None, "a", seed=0)
    uniform = cfg.build().run(Uniform(tokenizer.vocab_size, 1024), tokenizer, None, "b", seed=1)
    assert [r["example_id"] for r in trained] == [r["example_id"] for r in uniform]
    mean = {
        name: sum(r["bits_per_byte"] for r in rows) / len(rows)
        for name, rows in (("trained", trained), ("uniform", uniform))
    }
    assert mean["trained"] < mean["uniform"]  # fewer bits per byte: lower is better


def test_bits_per_byte_and_empty_corpus_error() -> None:
    assert bits_per_byte(-8 * math.log(2), "abcd") == pytest.approx(2.0)
    assert bits_per_byte(-3 * math.log(2), "é") == pytest.approx(1.5)  # two UTF-8 bytes
    cfg = TASKS.parse({**CFG, "modules": ["json"], "heldout_fraction": 0.01})
    with pytest.raises(ValueError, match="code_likelihood: no held-out function"):
        cfg.build().run(Uniform(300, 64), None, None, "r", seed=0)


def test_code_a_tokenizer_reads_as_unknown_words_is_refused() -> None:
    """Bits per byte of <unk> tokens would measure nothing about the code: refused in one line."""
    cfg = TASKS.parse({**CFG, "max_examples": 5})
    words = train_tokenizer(TokenizerConfig(kind="word"), ["Ada was born in Paris.\n"])
    model = Uniform(words.vocab_size, max_seq_len=64)
    with pytest.raises(ValueError, match=r"^code_likelihood: function .* \(<unk>\), so its score"):
        cfg.build().run(model, words, None, "run0", seed=7)
