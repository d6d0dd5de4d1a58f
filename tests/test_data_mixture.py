"""Pretraining data from real sources: per-domain tokenization, validation split, and a mixture
that up- and down-samples domains to weights and a token budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.data.loader import document_windows
from transferlab.data.prepare import prepare_data, validation_domains
from transferlab.data.tokenizer import TextTokenizer

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def _jsonl(path, n_docs: int, words_per_doc: int, offset: int) -> str:
    """``n_docs`` distinct texts: a word naming the document, then words of a cycle."""
    texts = [
        " ".join(
            [
                f"doc{offset}x{i}",
                *(WORDS[(offset + i + k) % len(WORDS)] for k in range(1, words_per_doc)),
            ]
        )
        for i in range(n_docs)
    ]
    return _write_texts(path, texts)


def _write_texts(path, texts: list[str]) -> str:
    with open(path, "w") as f:
        for text in texts:
            f.write(json.dumps({"text": text}) + "\n")
    return str(path)


def _decoded(folder, tokenizer) -> list[str]:
    return [tokenizer.decode(folder.document(i)[1:-1]) for i in range(folder.n_docs)]


def _config(tmp_path, **mixture) -> RunConfig:
    small = _jsonl(tmp_path / "small.jsonl", 10, 8, 0)
    large = _jsonl(tmp_path / "large.jsonl", 60, 8, 3)
    data = {
        "seq_len": 16,
        "val_fraction": 0.1,
        "sources": [
            {"name": "jsonl", "path": small, "label": "small"},
            {"name": "jsonl", "path": large, "label": "large"},
        ],
    }
    if mixture:
        data["mixture"] = mixture
    return validate(RunConfig, {"tokenizer": {"kind": "word"}, "data": data})


def _domains(prepared) -> dict:
    info = json.loads((prepared.root / "info.json").read_text())
    return {d["name"]: d for d in info["domains"]}, info


def test_natural_mixture_takes_every_training_document_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    prepared = prepare_data(_config(tmp_path))
    domains, info = _domains(prepared)
    assert {d: (v["docs"], v["sampled_docs"]) for d, v in domains.items()} == {
        "small": (9, 9),
        "large": (54, 54),
    }
    assert all(v["epochs"] == 1.0 for v in domains.values())
    assert info["val"]["docs"] == 1 + 6
    assert info["train"]["docs"] == 63
    assert info["validation"] == {
        "by": "document",
        "groups": 7,
        "docs": 7,
        "tokens": info["val"]["tokens"],
        "unknown_tokens": 0,
        "domains": [{"name": "small", "docs": 1}, {"name": "large", "docs": 6}],
    }
    # Every document is [bos] + 8 words + [eos]: the decoded text is one of the inputs.
    tokenizer = TextTokenizer.from_file(prepared.tokenizer_path)
    first = prepared.train_folder().document(0)
    assert first[0] == tokenizer.special.bos and first[-1] == tokenizer.special.eos
    assert len(tokenizer.decode(first[1:-1]).split()) == 8


def test_weights_and_budget_upsample_one_domain_and_downsample_the_other(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = _config(tmp_path, weights={"small": 3, "large": 1}, tokens=400, seed=1)
    domains, info = _domains(prepare_data(cfg))
    small, large = domains["small"], domains["large"]
    assert (small["target_tokens"], large["target_tokens"]) == (300, 100)
    doc_tokens = 10  # bos + 8 words + eos
    # Documents are drawn until the target is reached: at most one document past it.
    for d in (small, large):
        assert d["target_tokens"] <= d["sampled_tokens"] < d["target_tokens"] + doc_tokens
    assert small["epochs"] == pytest.approx(small["sampled_tokens"] / small["tokens"], abs=1e-4)
    assert small["epochs"] > 3 and large["epochs"] < 1
    assert info["train"]["tokens"] == small["sampled_tokens"] + large["sampled_tokens"]


def test_mixture_is_deterministic_and_its_seed_matters(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    a = prepare_data(_config(tmp_path, weights={"small": 1, "large": 1}, seed=0))
    tokens_a = a.train_folder().tokens(0, a.n_train_tokens).copy()
    b = prepare_data(_config(tmp_path, weights={"small": 1, "large": 1}, seed=1))
    assert a.key != b.key
    assert not np.array_equal(tokens_a, b.train_folder().tokens(0, b.n_train_tokens))
    again = prepare_data(_config(tmp_path, weights={"small": 1, "large": 1}, seed=0))
    assert again.root == a.root  # cached, same key


def test_duplicate_texts_and_upsampling_never_put_a_validation_text_in_training(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    # Six texts, each copied within "web"; three of them also in "books", whose mixture weight
    # repeats it over several epochs.
    texts = [" ".join(WORDS[i : i + 4]) for i in range(6)]
    web = _write_texts(tmp_path / "web.jsonl", [t for t in texts for _ in range(5)])
    books = _write_texts(tmp_path / "books.jsonl", texts[:3] * 2)
    data = {
        "val_fraction": 0.34,
        "sources": [
            {"name": "jsonl", "path": web, "label": "web"},
            {"name": "jsonl", "path": books, "label": "books"},
        ],
        "mixture": {"weights": {"web": 1, "books": 3}, "tokens": 600},
    }
    for seed in range(4):  # several splits, so both domains' picks are exercised
        data["mixture"]["seed"] = seed
        prepared = prepare_data(validate(RunConfig, {"tokenizer": {"kind": "word"}, "data": data}))
        tokenizer = TextTokenizer.from_file(prepared.tokenizer_path)
        train = set(_decoded(prepared.train_folder(), tokenizer))
        val = _decoded(prepared.val_folder(), tokenizer)
        assert val and train and not train & set(val)
        assert len(set(val)) == len(val)  # one copy of each validation text
        assert train | set(val) == set(texts)  # nothing lost but the copies
        info = json.loads((prepared.root / "info.json").read_text())
        assert info["validation"]["docs"] == info["validation"]["groups"] == len(val)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mixture": {"weights": {"x": 1}}}, "data.mixture needs data.sources"),
        (
            {"sources": [{"name": "jsonl", "path": "a"}], "mixture": {"weights": {"web": 1}}},
            "data.mixture.weights names ['web'], not among sources ['jsonl']",
        ),
        (
            {"sources": [{"name": "jsonl", "path": "a"}, {"name": "jsonl", "path": "b"}]},
            "repeat a name; give each a distinct label",
        ),
        (
            {"sources": [{"name": "jsonl", "path": "a"}], "mixture": {"weights": {"jsonl": -1}}},
            "must be >= 0 with a positive sum",
        ),
    ],
)
def test_inconsistent_data_configs_fail_in_one_line(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(RunConfig, {"data": data})


def test_a_run_pretrains_on_the_standard_library(tiny_config, monkeypatch, tmp_path):
    from transferlab.train import train

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(
        "tokenizer.kind=bpe",
        "tokenizer.vocab_size=400",
        "trainer.max_steps=3",
        "trainer.eval_interval=3",
        "trainer.checkpoint_interval=3",
        "data.sources=[{name: python_stdlib, split: function, modules: [json, textwrap]}]",
    )
    result = train(cfg)
    assert result.steps == 3 and result.val_loss is not None
    info = json.loads((prepare_data(cfg).root / "info.json").read_text())
    assert [d["name"] for d in info["domains"]] == ["python_stdlib"]


def test_each_domain_reads_its_own_validation_documents_and_windows(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    prepared = prepare_data(_config(tmp_path))
    domains = validation_domains(prepared)
    assert domains == {"small": range(0, 1), "large": range(1, 7)}
    tokenizer = TextTokenizer.from_file(prepared.tokenizer_path)
    folder = prepared.val_folder()
    texts = _decoded(folder, tokenizer)
    # small's texts start with doc0x<i>, large's with doc3x<i> (see _config).
    assert all(texts[i].startswith("doc0x") for i in domains["small"])
    assert all(texts[i].startswith("doc3x") for i in domains["large"])
    # Windows of 4 + 1 tokens cut the large domain's 6 x 10 tokens alone, overlapping by one.
    windows = document_windows(folder, domains["large"], seq_len=4, limit=100)
    start = int(folder.doc_ends[0])
    assert windows.shape == (14, 5) and windows.dtype == torch.int64  # (60 - 1) // 4
    stream = torch.from_numpy(folder.tokens(start, start + 57).astype(np.int64))
    assert torch.equal(windows[:, :4].flatten(), stream[:56])
    assert torch.equal(windows[:, 4], stream[4:57:4])
    assert document_windows(folder, domains["large"], seq_len=4, limit=3).shape == (3, 5)
    assert document_windows(folder, domains["small"], seq_len=16, limit=3).shape == (0, 17)
    # A stage built before the counts were recorded is named, with the fix.
    info_path = prepared.root / "info.json"
    info = json.loads(info_path.read_text())
    del info["validation"]["domains"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="recorded each domain's validation documents; delete"):
        validation_domains(prepared)
