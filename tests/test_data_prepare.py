import json
from typing import Literal

import numpy as np
import pytest

from transferlab.artifacts import cache_root
from transferlab.config import WORLDS, DataConfig, RunConfig, TokenizerConfig, WorldConfig
from transferlab.data import prepare
from transferlab.data.prepare import data_key, prepare_data, split_documents
from transferlab.data.shards import TokenizedFolder, write_tokenized
from transferlab.data.tokenizer import train_tokenizer
from transferlab.worlds import World

COLORS = ["red", "green", "blue", "amber"]


class LinesWorld(World):
    """A stand-in world: numbered sentences, counting how often its corpus is generated."""

    calls = 0

    def __init__(self, cfg: "LinesConfig") -> None:
        self.cfg = cfg

    def write(self, out_dir) -> None:
        (out_dir / "corpus.txt").write_text("\n".join(self.documents()))

    def tokenizer_texts(self) -> list[str]:
        LinesWorld.calls += 1  # once per data build
        return self.documents()

    def documents(self) -> list[str]:
        rng = np.random.default_rng(self.cfg.seed)
        return [
            f"Item {i} is {COLORS[rng.integers(4)]}, and item {i + 1} is {COLORS[i % 4]}."
            for i in range(self.cfg.n_docs)
        ]


class LinesConfig(WorldConfig):
    name: Literal["test_lines"] = "test_lines"
    n_docs: int = 40

    def build(self) -> LinesWorld:
        return LinesWorld(self)


if "test_lines" not in WORLDS.names():  # registries refuse a second registration
    WORLDS.register("test_lines")(LinesConfig)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))


def run_config(n_docs: int = 40, val_fraction: float = 0.1, kind: str = "word") -> RunConfig:
    return RunConfig(
        world=LinesConfig(n_docs=n_docs, seed=3),
        tokenizer=TokenizerConfig(kind=kind, vocab_size=300),
        data=DataConfig(val_fraction=val_fraction),
    )


def decoded_docs(folder: TokenizedFolder, tokenizer) -> list[str]:
    texts = []
    for i in range(folder.n_docs):
        ids = folder.document(i).tolist()
        assert ids[0] == tokenizer.special.bos and ids[-1] == tokenizer.special.eos
        texts.append(tokenizer.decode(ids[1:-1]))
    return texts


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_builds_tokenizer_and_splits_from_the_world(kind):
    cfg = run_config(kind=kind)
    data = prepare_data(cfg)
    assert data.root == cache_root() / "data" / data_key(cfg)
    assert data.key == data_key(cfg)
    assert (data.root / "COMPLETE").is_file()
    tokenizer = data.tokenizer()
    assert data.vocab_size == tokenizer.vocab_size <= 300
    assert data.special.all == (0, 1, 2, 3)

    docs = LinesWorld(cfg.world).documents()
    train_ids, val_ids = split_documents(40, 0.1, seed=3)
    train, val = data.train_folder(), data.val_folder()
    assert decoded_docs(train, tokenizer) == [docs[i] for i in train_ids]  # corpus order kept
    assert decoded_docs(val, tokenizer) == [docs[i] for i in val_ids]
    assert (train.n_docs, val.n_docs) == (36, 4)
    assert (data.n_train_tokens, data.n_val_tokens) == (train.n_tokens, val.n_tokens)

    info = json.loads((data.root / "info.json").read_text())
    assert info["train"] == {"docs": 36, "tokens": train.n_tokens}
    assert info["val"] == {"docs": 4, "tokens": val.n_tokens}
    assert (info["vocab_size"], info["dtype"], info["token_size"]) == (
        data.vocab_size,
        "uint16",
        2,
    )


def test_second_call_reuses_the_cached_directory():
    cfg = run_config()
    before = LinesWorld.calls
    first = prepare_data(cfg)
    stamp = (first.root / "train" / "000_tokens.ds").stat().st_mtime_ns
    second = prepare_data(cfg)
    assert LinesWorld.calls == before + 1
    assert second == first
    assert (second.root / "train" / "000_tokens.ds").stat().st_mtime_ns == stamp


def test_key_follows_world_tokenizer_and_val_fraction():
    base = data_key(run_config())
    assert data_key(run_config()) == base
    assert data_key(run_config(n_docs=41)) != base
    assert data_key(run_config(kind="bpe")) != base
    assert data_key(run_config(val_fraction=0.2)) != base
    other_run = run_config().model_copy(update={"seed": 99, "name": "other"})
    assert data_key(other_run) == base  # the run's own seed does not change the data


def test_interrupted_build_leaves_nothing_finished(monkeypatch):
    cfg = run_config()
    real_write = prepare.write_tokenized

    def write_then_fail(docs, out_dir, *args, **kwargs):
        real_write(docs, out_dir, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "write_tokenized", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(cfg)
    assert list((cache_root() / "data").iterdir()) == []
    monkeypatch.setattr(prepare, "write_tokenized", real_write)
    assert prepare_data(cfg).train_folder().n_docs == 36


def test_no_validation_split():
    data = prepare_data(run_config(val_fraction=0.0))
    assert data.val_dir is None and data.val_folder() is None
    assert data.n_val_tokens == 0
    assert data.train_folder().n_docs == 40
    assert not (data.root / "val").exists()


def test_split_is_seeded_and_keeps_one_val_document():
    train, val = split_documents(10, 0.01, seed=0)
    assert len(val) == 1 and len(train) == 9
    assert sorted([*train, *val]) == list(range(10))
    assert np.array_equal(split_documents(50, 0.2, 1)[1], split_documents(50, 0.2, 1)[1])
    assert not np.array_equal(split_documents(50, 0.2, 1)[1], split_documents(50, 0.2, 2)[1])
    with pytest.raises(ValueError, match="leaves none to train on"):
        split_documents(1, 0.5, seed=0)


@pytest.mark.parametrize("with_val", [True, False])
def test_external_tokenized_folder(tmp_path, with_val):
    texts = LinesWorld(LinesConfig(n_docs=30)).documents()
    tokenizer = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), texts)
    tokenizer.save(tmp_path / "tok.json")
    folder = tmp_path / "tokens"
    write_tokenized(tokenizer.encode_batch(texts[:25]), folder, tokenizer.vocab_size)
    if with_val:
        write_tokenized(tokenizer.encode_batch(texts[25:]), folder / "val", tokenizer.vocab_size)
    cfg = RunConfig(
        world=LinesConfig(),
        data=DataConfig(path=str(folder), tokenizer_file=str(tmp_path / "tok.json")),
    )
    data = prepare_data(cfg)
    assert (data.train_dir, data.tokenizer_path) == (folder, tmp_path / "tok.json")
    assert data.vocab_size == tokenizer.vocab_size
    assert data.n_train_tokens == sum(len(ids) for ids in tokenizer.encode_batch(texts[:25]))
    assert data.train_folder().n_docs == 25  # the val/ subfolder is not part of train
    if with_val:
        assert data.val_dir == folder / "val" and data.val_folder().n_docs == 5
    else:
        assert data.val_dir is None and data.n_val_tokens == 0
    assert not (cache_root() / "data").exists()  # nothing built
