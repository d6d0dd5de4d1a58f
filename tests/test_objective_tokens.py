"""Tokens an objective adds after the tokenizer's vocabulary (objectives.tokens)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from transferlab.config import ConfigError
from transferlab.config.schemas import TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.objectives import ClmConfig
from transferlab.objectives.tokens import added_token_ids, model_vocab, run_tokenizer_json
from transferlab.train.trainer import resolve_model_vocab


class _WithTokens(ClmConfig):
    """clm with two added tokens: stands for span corruption's sentinels and the like."""

    def added_tokens(self) -> tuple[str, ...]:
        return ("<extra_id_0>", "<|good|>")


@pytest.fixture
def tokenizer_file(tmp_path):
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), ["a cat sat", "the dog ran"])
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    return path


def test_added_tokens_follow_the_vocabulary_in_order():
    assert added_token_ids(_WithTokens(), 11) == {"<extra_id_0>": 11, "<|good|>": 12}
    assert model_vocab(_WithTokens(), 11) == 13
    assert added_token_ids(ClmConfig(), 11) == {} and model_vocab(ClmConfig(), 11) == 11


def test_run_tokenizer_is_the_data_tokenizer_byte_for_byte_without_added_tokens(tokenizer_file):
    assert run_tokenizer_json(tokenizer_file, ClmConfig()) == tokenizer_file.read_bytes()


def test_run_tokenizer_knows_the_added_tokens_by_name_and_id(tokenizer_file):
    base = TextTokenizer.from_file(tokenizer_file)
    run = TextTokenizer(
        Tokenizer.from_str(run_tokenizer_json(tokenizer_file, _WithTokens()).decode())
    )
    ids = added_token_ids(_WithTokens(), base.vocab_size)
    assert run.vocab_size == base.vocab_size + 2
    assert {token: run.token_to_id(token) for token in ids} == ids
    text = " cat<|good|> dog"
    assert run.encode(text) == [*base.encode(" cat"), ids["<|good|>"], *base.encode(" dog")]
    assert run.decode(run.encode(text)) == text
    assert run.decode(run.encode(text), skip_special_tokens=True) == " cat dog"


def test_a_token_the_tokenizer_already_has_is_refused(tokenizer_file):
    class Clash(ClmConfig):
        def added_tokens(self) -> tuple[str, ...]:
            return ("<mask>",)

    with pytest.raises(ValueError, match="'<mask>', which the tokenizer already has"):
        run_tokenizer_json(tokenizer_file, Clash())


def test_the_model_vocabulary_grows_by_the_added_tokens(tiny_config):
    cfg = tiny_config().model_copy(update={"objective": _WithTokens()})
    assert resolve_model_vocab(cfg, 40).model.vocab_size == 42
    padded = cfg.model_copy(update={"model": cfg.model.model_copy(update={"vocab_size": 64})})
    assert resolve_model_vocab(padded, 40).model.vocab_size == 64
    short = cfg.model_copy(update={"model": cfg.model.model_copy(update={"vocab_size": 41})})
    with pytest.raises(ConfigError, match="expected at least the 42 ids"):
        resolve_model_vocab(short, 40)


def test_the_text_context_carries_the_run_tokenizer_with_the_added_tokens(
    tiny_config, tokenizer_file
):
    from transferlab.objectives.context import text_context

    cfg = tiny_config().model_copy(update={"objective": _WithTokens()})
    context = text_context(cfg, tokenizer_file)
    base = TextTokenizer.from_file(tokenizer_file)
    assert context.tokenizer.token_to_id("<|good|>") == base.vocab_size + 1
    assert context.entities == tuple(cfg.world.build().entities())
