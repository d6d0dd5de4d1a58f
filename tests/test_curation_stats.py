"""Corpus statistics: tokens per domain, length histograms, duplicate rates."""

import pytest
from rich.console import Console

from transferlab.config import TokenizerConfig
from transferlab.curation import MinHashConfig, print_stats, stats
from transferlab.curation.corpus_stats import bucket_label, length_bucket
from transferlab.data.sources import TextDocument
from transferlab.data.tokenizer import train_tokenizer

LONG = " ".join(f"word{i}" for i in range(40))  # 40 tokens
CORPUS = [
    TextDocument("a", "one two three", "news"),  # 3 tokens
    TextDocument("b", "One  two\nthree", "news"),  # exact duplicate of a (normalized)
    TextDocument("c", LONG, "news"),
    TextDocument("d", "x", "code"),  # 1 token
    TextDocument("e", LONG.replace("word7", "seven"), "code"),  # near duplicate of c
    TextDocument("f", "alpha beta gamma delta epsilon", "code"),  # 5 tokens
]


def test_length_buckets_are_powers_of_two():
    assert [length_bucket(n) for n in (0, 1, 2, 3, 4, 7, 8, 1000)] == [0, 1, 2, 2, 4, 4, 8, 512]
    assert [bucket_label(b) for b in (0, 1, 2, 512)] == ["0", "1", "2-3", "512-1023"]


def test_tokens_histograms_and_exact_duplicates_per_domain():
    result = stats(CORPUS)
    assert list(result.domains) == ["code", "news"]
    news, code, total = result.domains["news"], result.domains["code"], result.total
    assert (news.documents, news.tokens, news.chars) == (3, 46, 13 + 14 + len(LONG))
    assert (code.documents, code.tokens) == (3, 46)
    assert news.length_histogram == {2: 2, 32: 1}
    assert code.length_histogram == {1: 1, 4: 1, 32: 1}
    assert total.length_histogram == {1: 1, 2: 2, 4: 1, 32: 2}
    assert (news.exact_duplicates, code.exact_duplicates, total.exact_duplicates) == (1, 0, 1)
    assert news.exact_duplicate_rate == pytest.approx(1 / 3)
    assert total.near_duplicates == 0 and result.near_duplicates is False
    assert total.mean_tokens == pytest.approx(92 / 6)


def test_near_duplicates_are_counted_when_minhash_is_given():
    result = stats(CORPUS, minhash=MinHashConfig(ngram=3))
    assert result.near_duplicates is True
    assert (result.domains["code"].near_duplicates, result.domains["news"].near_duplicates) == (
        1,
        0,
    )
    assert result.total.exact_duplicates == 1  # an exact duplicate is not also counted as near
    assert result.domains["code"].near_duplicate_rate == pytest.approx(1 / 3)


def test_tokens_can_be_counted_by_a_tokenizer():
    texts = [doc.text for doc in CORPUS]
    tokenizer = train_tokenizer(TokenizerConfig(kind="word", vocab_size=200), texts)
    result = stats(CORPUS, tokenizer=tokenizer)
    assert result.total.tokens == sum(len(tokenizer.encode(t)) for t in texts)
    assert result.total.tokens > 92  # word level also counts whitespace pieces


def test_empty_corpus_has_zero_rates():
    result = stats([])
    assert result.domains == {} and result.total.documents == 0
    assert result.total.exact_duplicate_rate == 0.0 and result.total.mean_tokens == 0.0


def test_print_stats_shows_domains_rates_and_histogram():
    console = Console(record=True, width=120)
    print_stats(stats(CORPUS, minhash=MinHashConfig(ngram=3)), console)
    text = console.export_text()
    assert "news" in text and "code" in text and "total" in text
    assert "33.3%" in text  # news: 1 exact duplicate of 3; code: 1 near duplicate of 3
    assert "32-63" in text and "2-3" in text
