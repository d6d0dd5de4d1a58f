import hashlib
import json
import logging
import math
import shutil
import warnings
from typing import Literal

import numpy as np
import pytest

from transferlab.artifacts import cache_root
from transferlab.config import (
    WORLDS,
    ConfigError,
    DataConfig,
    RunConfig,
    TokenizerConfig,
    WorldConfig,
    validate,
)
from transferlab.data import prepare
from transferlab.data.prepare import (
    VAL_FLOOR_CAP,
    UnknownTokensWarning,
    data_dir,
    data_key,
    prepare_data,
    split_groups,
    validation_floor,
)
from transferlab.data.shards import TokenizedFolder, write_tokenized
from transferlab.data.tokenizer import train_tokenizer
from transferlab.worlds import BiosConfig, World

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
    train_ids, val_ids = split_groups(range(40), docs, 0.1, seed=3)
    train, val = data.train_folder(), data.val_folder()
    assert decoded_docs(train, tokenizer) == [docs[i] for i in train_ids]  # corpus order kept
    assert decoded_docs(val, tokenizer) == [docs[i] for i in val_ids]
    assert (train.n_docs, val.n_docs) == (36, 4)
    assert (data.n_train_tokens, data.n_val_tokens) == (train.n_tokens, val.n_tokens)

    info = json.loads((data.root / "info.json").read_text())
    assert info["train"] == {"docs": 36, "tokens": train.n_tokens}
    assert info["val"] == {"docs": 4, "tokens": val.n_tokens}
    unknown = 0 if kind == "bpe" else val.tokens(0, val.n_tokens).tolist().count(4)  # <unk>
    assert info["validation"] == {
        "by": "document",
        "groups": 4,
        "docs": 4,
        "tokens": val.n_tokens,
        "unknown_tokens": unknown,
    }
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
    left = [p.name for p in (cache_root() / "data").iterdir()]
    assert left == [f".{data_dir(cfg).name}.lock"]  # only the stage's lock file, nothing built
    monkeypatch.setattr(prepare, "write_tokenized", real_write)
    assert prepare_data(cfg).train_folder().n_docs == 36


def test_no_validation_split():
    data = prepare_data(run_config(val_fraction=0.0))
    assert data.val_dir is None and data.val_folder() is None
    assert data.n_val_tokens == 0
    assert data.train_folder().n_docs == 40
    assert not (data.root / "val").exists()


def test_split_is_seeded_and_keeps_one_val_group():
    texts = [f"text {i}" for i in range(50)]
    train, val = split_groups(range(10), texts[:10], 0.01, seed=0)
    assert len(val) == 1 and len(train) == 9
    assert sorted([*train, *val]) == list(range(10))
    assert np.array_equal(
        split_groups(range(50), texts, 0.2, 1)[1], split_groups(range(50), texts, 0.2, 1)[1]
    )
    assert not np.array_equal(
        split_groups(range(50), texts, 0.2, 1)[1], split_groups(range(50), texts, 0.2, 2)[1]
    )
    with pytest.raises(
        ValueError, match="the world has 1 document groups; data.val_fraction=0.5 leaves none"
    ):
        split_groups([0], ["one"], 0.5, seed=0)
    with pytest.raises(ValueError, match="2 group labels for 3 documents"):
        split_groups([0, 1], ["a", "b", "c"], 0.5, seed=0)


def test_split_holds_out_whole_groups_and_merges_groups_sharing_a_text():
    # Groups of three documents; group g's first text also opens group g + 10 (a shared text).
    groups = [g for g in range(20) for _ in range(3)]
    texts = [
        f"g{g % 10} shared" if k == 0 else f"g{g} part {k}" for g in range(20) for k in range(3)
    ]
    for seed in range(5):
        train, val = split_groups(groups, texts, 0.3, seed)
        val_groups = {groups[i] for i in val}
        assert len(val_groups) == 6  # 3 of 10 merged groups, two labels each
        assert {g % 10 for g in val_groups} == {g for g in val_groups if g < 10}
        assert not {groups[i] for i in train} & val_groups
        assert not {texts[i] for i in train} & {texts[i] for i in val}
        assert len(val) == len({texts[i] for i in val}) == 6 * 3 - 3  # one copy per text
        assert sorted([*train, *val, *(i + 30 for i in val if i < 30 and i % 3 == 0)]) == list(
            range(60)
        )


class CopiesWorld(LinesWorld):
    """A world that repeats each document four times and declares the copies a group."""

    def documents(self) -> list[str]:
        return [text for text in super().documents() for _ in range(4)]

    def document_groups(self) -> list[int]:
        return [i // 4 for i in range(len(self.documents()))]


class CopiesConfig(LinesConfig):
    name: Literal["test_copies"] = "test_copies"

    def build(self) -> CopiesWorld:
        return CopiesWorld(self)


if "test_copies" not in WORLDS.names():
    WORLDS.register("test_copies")(CopiesConfig)


def test_a_world_without_held_out_documents_loses_whole_groups_to_validation():
    cfg = RunConfig(world=CopiesConfig(n_docs=40, seed=3), data=DataConfig(val_fraction=0.1))
    data = prepare_data(cfg)
    tokenizer = data.tokenizer()
    train = decoded_docs(data.train_folder(), tokenizer)
    val = decoded_docs(data.val_folder(), tokenizer)
    assert len(train) == 36 * 4 and len(val) == 4  # four groups out, one copy each
    assert not set(train) & set(val)
    info = json.loads((data.root / "info.json").read_text())
    assert info["validation"] | {"tokens": 0} == {
        "by": "group",
        "groups": 4,
        "docs": 4,
        "tokens": 0,
        "unknown_tokens": 0,
    }


def bios_run(val_fraction: float = 0.02, **world) -> RunConfig:
    return RunConfig(world=BiosConfig(**world), data=DataConfig(val_fraction=val_fraction))


@pytest.mark.parametrize("knobs", [{}, {"exposures": 5, "rephrasings": 5}])
def test_bios_validation_is_held_out_people_sharing_no_text_with_training(knobs):
    cfg = bios_run(**knobs)
    data = prepare_data(cfg)
    world = cfg.world.build()
    tokenizer = data.tokenizer()
    train = decoded_docs(data.train_folder(), tokenizer)
    assert train == world.documents()  # the whole corpus trains, in corpus order
    # Validation holds a prefix of the held-out people's biographies (compared as tokens: a
    # word no training text holds is <unk> in the word-level vocabulary).
    val = world.validation_documents(data.val_folder().n_docs)
    stored = [data.val_folder().document(i).tolist() for i in range(len(val))]
    bos, eos = tokenizer.special.bos, tokenizer.special.eos
    assert stored == [[bos, *ids, eos] for ids in tokenizer.encode_batch(val)]
    assert not set(train) & set(val)
    qa_names = {person.full_name for person in world.people}
    assert not any(name in text for name in qa_names for text in val[:50])
    floor = validation_floor(cfg)
    assert floor == 4 * 32 * 128 + 1  # default trainer: a full validation batch
    assert data.n_val_tokens >= max(floor, 0.02 * data.n_train_tokens)
    last = data.val_folder().document(len(val) - 1).size
    assert data.n_val_tokens - last < max(floor, math.ceil(0.02 * data.n_train_tokens))  # shortest
    info = json.loads((data.root / "info.json").read_text())
    assert info["validation"]["by"] == "held-out entities"
    assert info["validation"]["groups"] == info["validation"]["docs"] == len(val)


def test_val_fraction_beyond_the_floor_takes_more_held_out_people():
    small, large = prepare_data(bios_run(0.02)), prepare_data(bios_run(0.9))
    assert large.n_val_tokens >= 0.9 * large.n_train_tokens > small.n_val_tokens
    assert small.n_train_tokens == large.n_train_tokens


def test_a_small_world_gets_a_full_validation_batch():
    cfg = bios_run(num_people=100)
    data = prepare_data(cfg)
    t = cfg.trainer
    n_windows = (data.n_val_tokens - 1) // cfg.data.seq_len  # the trainer's rule
    assert min(t.eval_batches * t.batch_size, n_windows) == t.eval_batches * t.batch_size


@pytest.mark.parametrize("num_people", [20, 100])
def test_bios_validation_text_has_no_unknown_word(num_people):
    """Validation people are recombinations of corpus people's fields, so the word-level
    tokenizer (trained on the corpus) reads every validation token: an <unk> would bias the
    validation loss."""
    data = prepare_data(bios_run(num_people=num_people))
    val = data.val_folder()
    unk = data.tokenizer().token_to_id("<unk>")
    assert unk is not None and unk not in val.tokens(0, val.n_tokens).tolist()
    info = json.loads((data.root / "info.json").read_text())
    assert info["validation"]["unknown_tokens"] == 0


def test_validation_floor_follows_the_trainer_and_is_capped():
    cfg = bios_run()
    assert data_key(
        cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"batch_size": 64})})
    ) != data_key(cfg)
    huge = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"batch_size": 10**6})})
    assert validation_floor(huge) == VAL_FLOOR_CAP
    no_eval = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"eval_batches": 0})})
    assert validation_floor(no_eval) == 0 == validation_floor(bios_run(0.0))


def test_a_tiny_bios_run_reports_a_validation_loss(tiny_config):
    from transferlab.train import train

    # The default sequence length and validation batch, which need 16385 validation tokens.
    cfg = tiny_config(
        "world.num_people=100",
        "data.seq_len=128",
        "data.val_fraction=0.02",
        "trainer.batch_size=32",
        "trainer.eval_batches=4",
        "trainer.max_steps=3",
        "trainer.eval_interval=3",
        "trainer.checkpoint_interval=3",
    )
    result = train(cfg)
    assert result.val_loss is not None and math.isfinite(result.val_loss)


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


def test_data_keys_of_configs_without_a_tokenizer_file_are_those_of_before():
    """Cached data stages stay valid: these keys were computed before a corpus could be read
    with a given tokenizer (the jsonl one since its files' bytes are keyed, here: missing)."""
    assert data_key(RunConfig()) == "527d39cb780f5d69"
    sources = {
        "data": {
            "sources": [{"name": "jsonl", "path": "/data/a.jsonl"}],
            "mixture": {"weights": {"jsonl": 1.0}},
        },
        "tokenizer": {"kind": "bpe", "vocab_size": 512},
    }
    assert data_key(validate(RunConfig, sources)) == "3b40be4b623f5c6e"


# Every piece of a LinesWorld document except its two numbers (" 3", " 4").
KNOWN_PIECES = "Item is, and item is. red green blue amber"


def _with_tokenizer_file(path, n_docs: int = 5, val_fraction: float = 0.0) -> RunConfig:
    cfg = run_config(n_docs=n_docs, val_fraction=val_fraction)
    return cfg.model_copy(
        update={"data": DataConfig(val_fraction=val_fraction, tokenizer_file=str(path))}
    )


def test_a_tokenizer_file_reads_the_corpus_and_counts_its_unknown_words_exactly(tmp_path):
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), [KNOWN_PIECES])
    tokenizer.save(tmp_path / "tok.json")
    cfg = _with_tokenizer_file(tmp_path / "tok.json")
    calls = LinesWorld.calls
    with pytest.warns(UnknownTokensWarning, match=r"15\.4% of the training tokens \(10 of 65\)"):
        data = prepare_data(cfg)
    # The very file, byte for byte (a child's weights read its parent's ids), not a retrained one.
    assert data.tokenizer_path.read_bytes() == (tmp_path / "tok.json").read_bytes()
    assert data.vocab_size == tokenizer.vocab_size
    assert LinesWorld.calls == calls  # no tokenizer was trained on the world's texts
    docs = LinesWorld(cfg.world).documents()
    unk = tokenizer.token_to_id("<unk>")
    expected = [[1, *tokenizer.encode(doc), 2] for doc in docs]
    assert [data.train_folder().document(i).tolist() for i in range(5)] == expected
    assert all(ids.count(unk) == 2 for ids in expected)  # the two numbers of each document
    info = json.loads((data.root / "info.json").read_text())
    assert info["train_unknown_tokens"] == 10 and info["train"]["tokens"] == 65
    assert info["tokenizer"] == {
        "sha256": hashlib.sha256(data.tokenizer_path.read_bytes()).hexdigest()
    }


def test_a_tokenizer_file_is_keyed_by_its_bytes_not_its_path(tmp_path):
    word = train_tokenizer(TokenizerConfig(kind="word"), [KNOWN_PIECES])
    word.save(tmp_path / "a.json")
    (tmp_path / "elsewhere").mkdir()
    shutil.copyfile(tmp_path / "a.json", tmp_path / "elsewhere" / "b.json")
    train_tokenizer(TokenizerConfig(kind="word"), [KNOWN_PIECES + " violet"]).save(
        tmp_path / "c.json"
    )
    key = data_key(_with_tokenizer_file(tmp_path / "a.json"))
    assert data_key(_with_tokenizer_file(tmp_path / "elsewhere" / "b.json")) == key
    assert data_key(_with_tokenizer_file(tmp_path / "c.json")) != key
    assert key != data_key(run_config(n_docs=5, val_fraction=0.0))  # nor a trained tokenizer's
    assert data_key(_with_tokenizer_file(tmp_path / "a.json", n_docs=6)) != key  # the corpus


def test_a_byte_level_tokenizer_file_has_no_unknown_tokens_and_no_warning(tmp_path):
    train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), [KNOWN_PIECES]).save(
        tmp_path / "t.json"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownTokensWarning)
        data = prepare_data(_with_tokenizer_file(tmp_path / "t.json", n_docs=20, val_fraction=0.1))
    info = json.loads((data.root / "info.json").read_text())
    assert (info["train_unknown_tokens"], info["validation"]["unknown_tokens"]) == (0, 0)
    tokenizer = data.tokenizer()
    docs = LinesWorld(LinesConfig(n_docs=20, seed=3)).documents()
    assert sorted(
        decoded_docs(data.train_folder(), tokenizer) + decoded_docs(data.val_folder(), tokenizer)
    ) == sorted(docs)


def test_a_missing_tokenizer_file_fails_in_one_line_before_any_work(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^data.tokenizer_file: .*nope.json does not exist; give"
    ):
        prepare_data(_with_tokenizer_file(tmp_path / "nope.json"))
    assert not (cache_root() / "data").exists()


def test_a_corrupt_cached_data_stage_is_rebuilt(caplog):
    cfg = run_config()
    first = prepare_data(cfg)
    shard = next(first.train_dir.glob("*.ds"))
    good = shard.read_bytes()
    shard.write_bytes(bytes(b ^ 0xFF for b in good))
    with caplog.at_level(logging.WARNING):
        again = prepare_data(cfg)
    assert shard.read_bytes() == good
    assert again.train_folder().n_docs == first.train_folder().n_docs
    assert caplog.messages == [
        f"{shard} does not match the checksum recorded when it was written; rebuilding {first.root}"
    ]
