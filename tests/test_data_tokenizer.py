import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from transferlab.config import TokenizerConfig
from transferlab.data.tokenizer import SpecialTokenIds, TextTokenizer, train_tokenizer

FIRST = ["Ada", "Lynn", "Omar", "Zoë", "Kai", "Sven", "Mira", "Jonas"]
LAST = ["Moore", "Okafor", "Lindqvist", "Tanaka", "García"]
CITIES = ["Paris", "São Paulo", "Oslo", "New York"]
MONTHS = ["January", "March", "July", "October"]


def bios(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        first, middle = rng.sample(FIRST, 2)
        last = rng.choice(LAST)
        texts.append(
            f"{first} {middle} {last} was born on {rng.choice(MONTHS)} {rng.randint(1, 28)}, "
            f"{rng.randint(1950, 2000)}. She studied physics at {rng.choice(CITIES)} University. "
            f"{first}'s employer (Acme-{rng.randint(1, 9)}) is in {rng.choice(CITIES)}!"
        )
    return texts


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return bios()


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_round_trip_on_corpus(kind, corpus):
    tok = train_tokenizer(TokenizerConfig(kind=kind, vocab_size=600), corpus)
    for text in corpus:
        assert tok.decode(tok.encode(text)) == text
    assert [tok.decode(ids) for ids in tok.encode_batch(corpus)] == corpus


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_special_tokens_are_ids_0_to_3(kind, corpus):
    tok = train_tokenizer(TokenizerConfig(kind=kind, vocab_size=600), corpus)
    assert tok.special == SpecialTokenIds(pad=0, bos=1, eos=2, mask=3)
    assert tok.special.all == (0, 1, 2, 3)
    for token, expected in [("<pad>", 0), ("<bos>", 1), ("<eos>", 2), ("<mask>", 3)]:
        assert tok.token_to_id(token) == expected
    # encode adds no special tokens; decode keeps those it is given
    ids = tok.encode("Ada was born.")
    assert not set(ids) & set(tok.special.all)
    assert tok.decode([1, *ids, 2]) == "<bos>Ada was born.<eos>"
    assert tok.decode([1, *ids, 2], skip_special_tokens=True) == "Ada was born."


def test_word_level_pieces_and_unknown_words(corpus):
    tok = train_tokenizer(TokenizerConfig(kind="word", vocab_size=600), corpus)
    assert tok.token_to_id("<unk>") == 4
    pieces = [tok.tokenizer.id_to_token(i) for i in tok.encode("Ada was born on March 4, 2042.")]
    assert pieces == ["Ada", " was", " born", " on", " March", " 4", ",", "<unk>", "."]
    # " 2042" is outside the corpus's years
    assert tok.decode(tok.encode("Ada studied Quetzalcoatl.")) == "Ada studied<unk>."


def test_word_level_vocab_size_caps_vocabulary(corpus):
    tok = train_tokenizer(TokenizerConfig(kind="word", vocab_size=20), corpus)
    assert tok.vocab_size == 20
    assert tok.token_to_id("<unk>") == 4


def test_bpe_round_trips_any_text(corpus):
    tok = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=400), corpus)
    for text in ["a  b\n\n c\t d  ", "   leading and trailing   ", "Ünïcödé → 字 🙂", "\n", ""]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == 400


def test_bpe_vocab_too_small_is_a_clear_error(corpus):
    with pytest.raises(ValueError, match=r"vocab_size=100 .* at least 260"):
        train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=100), corpus)


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_training_is_deterministic(kind, corpus):
    cfg = TokenizerConfig(kind=kind, vocab_size=300)
    a = train_tokenizer(cfg, corpus).tokenizer.to_str()
    b = train_tokenizer(cfg, list(corpus)).tokenizer.to_str()
    assert a == b


def test_training_is_deterministic_across_processes():
    # Hash maps in the Rust trainers are seeded per process; ties must not depend on them.
    script = (
        "import json, sys; sys.path.insert(0, {here!r}); import test_data_tokenizer as t; "
        "cfgs = [t.TokenizerConfig(kind=k, vocab_size=300) for k in ('word', 'bpe')]; "
        "print(json.dumps([t.train_tokenizer(c, t.bios()).tokenizer.to_str() for c in cfgs]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script.format(here=str(Path(__file__).parent))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    local = [
        train_tokenizer(TokenizerConfig(kind=kind, vocab_size=300), bios()).tokenizer.to_str()
        for kind in ("word", "bpe")
    ]
    assert json.loads(out) == local


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_save_and_load(kind, corpus, tmp_path):
    tok = train_tokenizer(TokenizerConfig(kind=kind, vocab_size=500), corpus)
    tok.save(tmp_path / "tokenizer.json")
    loaded = TextTokenizer.from_file(tmp_path / "tokenizer.json")
    assert loaded.vocab_size == tok.vocab_size
    assert loaded.special == tok.special
    assert loaded.encode(corpus[0]) == tok.encode(corpus[0])
    assert loaded.decode(loaded.encode(corpus[1])) == corpus[1]


def test_from_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        TextTokenizer.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a Hugging Face tokenizer.json"):
        TextTokenizer.from_file(tmp_path / "bad.json")


def test_tokenizer_without_our_special_tokens_is_rejected():
    from tokenizers import Tokenizer, models

    bare = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    with pytest.raises(ValueError, match="no '<pad>' token"):
        TextTokenizer(bare)
