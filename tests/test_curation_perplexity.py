"""Perplexity filter: a reference LM trained here, CCNet-style percentile buckets, score files."""

import json
import math
import random
import re

import numpy as np
import pytest

from transferlab.artifacts import cache_root
from transferlab.config import ConfigError, validate
from transferlab.curation import (
    CurationConfig,
    DedupConfig,
    PerplexityConfig,
    PerplexityFilter,
    ReferenceModelConfig,
    load_reference_model,
)
from transferlab.curation.reference import reference_key
from transferlab.data.sources import PythonStdlibConfig, TextDocument

# Trained once per test session (the conftest's shared cache): ~3 s on one CPU thread.
REFERENCE = {
    "sources": [{"name": "python_stdlib", "modules": ["json"]}],
    "d_model": 32,
    "n_layers": 1,
    "n_heads": 2,
    "steps": 200,
    "lr": 0.01,
}
NO_DEDUP = DedupConfig(exact=False, minhash=None)


def gibberish(n_words: int, seed: int) -> str:
    """Random lower-case letter strings: text unlike any reference corpus."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(n_words))


def shuffled(text: str, seed: int) -> str:
    """The same words and whitespace, the words in a random order."""
    parts = re.split(r"(\s+)", text)
    words = parts[0::2]
    random.Random(seed).shuffle(words)
    parts[0::2] = words
    return "".join(parts)


@pytest.fixture(scope="module")
def held_out() -> list[TextDocument]:
    """Standard-library code the reference model did not see (it saw json)."""
    source = PythonStdlibConfig(modules=["csv", "shlex", "textwrap"], split="function")
    return list(source.iter_documents())


def perplexity(**selection) -> PerplexityConfig:
    return validate(PerplexityConfig, {"reference": REFERENCE, **selection})


def test_reference_model_is_trained_once_and_learns():
    cfg = validate(ReferenceModelConfig, REFERENCE)
    first = load_reference_model(cfg)
    again = load_reference_model(cfg)
    assert first.key == again.key == reference_key(cfg)
    assert first.tokenizer.vocab_size == 512
    stored = json.loads((cache_root() / "curation/reference" / first.key / "info.json").read_text())
    assert stored["final_loss"] < stored["first_loss"] - 1.5
    assert stored["first_loss"] == pytest.approx(math.log(512), abs=0.3)


def test_in_distribution_code_scores_lower_than_its_shuffled_words(held_out):
    scorer = perplexity().build()
    real = np.array(scorer.score_texts([d.text for d in held_out]))
    mixed = np.array(scorer.score_texts([shuffled(d.text, i) for i, d in enumerate(held_out)]))
    assert len(held_out) == 18
    assert (real < mixed).sum() >= 15
    assert np.log(real).mean() < np.log(mixed).mean() - 0.15
    assert np.all(real > 1) and np.all(real < 512)


def test_scores_are_deterministic_and_independent_of_batching(held_out):
    texts = [d.text for d in held_out[:6]]
    whole = perplexity(batch_size=64).build().score_texts(texts)
    one_by_one = [perplexity(batch_size=1).build().score_texts([t])[0] for t in texts]
    assert whole == pytest.approx(one_by_one, rel=1e-4)


def test_buckets_split_by_rank_and_keep_selects():
    scores = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0])
    selection = perplexity(head_percentile=30, tail_percentile=60).build().select(scores)
    assert selection.labels == [
        "middle", "head", "tail", "head", "tail", "head", "tail", "middle", "middle", "tail"
    ]  # fmt: skip
    assert selection.keep.tolist() == [label != "tail" for label in selection.labels]
    assert selection.details["head_max_perplexity"] == 3.0
    assert selection.details["tail_min_perplexity"] == 7.0
    tail_only = perplexity(keep=["tail"]).build().select(scores)
    assert np.flatnonzero(tail_only.keep).tolist() == [2, 4, 6, 9]


def test_band_keeps_an_exact_share_even_with_ties():
    scores = np.array([1.0] * 6 + [2.0] * 4)
    keep = perplexity(band=[20, 70]).build().select(scores).keep
    assert keep.sum() == 5
    assert np.flatnonzero(keep).tolist() == [2, 3, 4, 5, 6]


def test_bad_selections_fail_in_one_line():
    with pytest.raises(ConfigError, match="head_percentile=70.0 exceeds tail_percentile=60.0"):
        perplexity(head_percentile=70)
    with pytest.raises(ConfigError, match=r"band=\[50.0, 50.0\] is not \[lo, hi\]"):
        perplexity(band=[50, 50])
    with pytest.raises(ConfigError, match="keep.0: got 'top'; expected 'head', 'middle' or"):
        perplexity(keep=["top"])


def test_pipeline_keeps_the_band_and_reuses_scores_for_a_new_band(tmp_path, held_out, monkeypatch):
    calls = []
    score_texts = PerplexityFilter.score_texts
    monkeypatch.setattr(
        PerplexityFilter,
        "score_texts",
        lambda self, texts: calls.append(len(texts)) or score_texts(self, texts),
    )
    real = [TextDocument(d.id, d.text, "code") for d in held_out]
    junk = [TextDocument(f"junk{i}", gibberish(60, i), "junk") for i in range(18)]
    corpus = [doc for pair in zip(real, junk, strict=True) for doc in pair]

    def run(name, **selection):
        cfg = CurationConfig(dedup=NO_DEDUP, perplexity=perplexity(**selection))
        return cfg.run(corpus, tmp_path / name, scores_dir=tmp_path / "scores")

    half = run("half", band=[0, 50])
    assert calls == [36]
    stage = half.report.stage("perplexity")
    assert (stage.docs_in, stage.docs_removed, half.report.output.documents) == (36, 18, 18)
    assert stage.details["score_file_reused"] is False
    kept = list(half.documents())
    assert [d.id for d in kept] == [d.id for d in held_out]  # the code, in corpus order
    assert all(d.metadata["perplexity"] > 0 for d in kept)

    head = run("head", head_percentile=25, keep=["head"])
    assert calls == [36]  # no document scored again
    assert head.report.stage("perplexity").details["score_file_reused"] is True
    assert head.report.output.documents == 9
    assert {d.metadata["perplexity_bucket"] for d in head.documents()} == {"head"}
    assert (tmp_path / "head/scores/perplexity.parquet").read_bytes() == (
        tmp_path / "half/scores/perplexity.parquet"
    ).read_bytes()

    run("other_model", band=[0, 50], max_tokens=256)  # what is scored changed: scored again
    assert calls == [36, 36]
