"""The classification tasks on labelled texts from files: ``text_probe`` and ``text_finetune``.

The data is constructed so that what a model can learn is known: every text is the same seven
filler words in a random order after a fixed first word, plus one keyword, and the keyword decides the label. Mean-pooled
embeddings (layer 0) of two texts with the same keyword are then identical, so a probe there
classifies every test text right; with labels drawn independently of the text, nothing beyond
chance is learnable.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.sources import SourceError
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate.base import Subject
from transferlab.evaluate.classification import is_test
from transferlab.evaluate.readers import Reader
from transferlab.evaluate.text_finetune import verbalizer
from transferlab.models import build_model

FILLER = ["the", "small", "old", "one", "near", "our", "house"]
KEYWORDS = {"apple": "fruit", "river": "water", "stone": "rock"}
CLASSES = sorted(KEYWORDS.values())


def _records(n: int, seed: int, shuffled: bool = False) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        keyword = rng.choice(sorted(KEYWORDS))
        words = rng.sample(FILLER, len(FILLER))
        words.insert(rng.randrange(len(words) + 1), keyword)
        label = rng.choice(CLASSES) if shuffled else KEYWORDS[keyword]
        text = " ".join(["note", *words])  # one first word: the others all follow a space
        records.append({"id": f"{seed}-{i}", "body": text, "label": label})
    return records


def _write(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _files(tmp_path: Path, shuffled: bool = False, n_train: int = 60, n_test: int = 30):
    train = _write(tmp_path / "train.jsonl", _records(n_train, 1, shuffled))
    test = _write(tmp_path / "test.jsonl", _records(n_test, 2, shuffled))
    return {"train_path": train, "test_path": test, "text_field": "body", "id_field": "id"}


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    # Word pieces carry their leading space, as the words after a text's first one have.
    words = " ".join(["note", *FILLER, *KEYWORDS, *CLASSES])
    return train_tokenizer(TokenizerConfig(kind="word"), [words])


def _model(tokenizer: TextTokenizer, n_layers: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=n_layers, n_heads=2)
    return build_model(cfg)


def _run(cfg: dict, tokenizer: TextTokenizer, model=None, **kwargs) -> list[dict]:
    task = TASKS.parse(cfg).build()
    return task.run(model or _model(tokenizer), tokenizer, None, "r0", seed=0, **kwargs)


def _accuracy(rows: list[dict]) -> float:
    return sum(r["correct"] for r in rows) / len(rows)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


# ------------------------------------------------------------------------------------ probe
def test_probe_on_keyword_labels_is_exact_at_the_embeddings_and_chance_on_shuffled_labels(
    tmp_path, tokenizer
):
    probe = {"name": "text_probe", "layer": 0, "pooling": "mean"}
    rows = _run({**probe, **_files(tmp_path)}, tokenizer)
    assert len(rows) == 30 and {r["split"] for r in rows} == {"test"}
    assert _accuracy(rows) == 1.0  # two texts with one keyword have the same features
    (tmp_path / "shuffled").mkdir()
    shuffled = _run({**probe, **_files(tmp_path / "shuffled", shuffled=True)}, tokenizer)
    # Chance is 1/3; the 30 test labels are independent of the texts, so 0.6 is > 3 sd above.
    assert _accuracy(shuffled) < 0.6


def test_probe_through_the_blocks_still_reads_the_keyword(tmp_path, tokenizer):
    rows = _run({"name": "text_probe", "layer": "all", **_files(tmp_path)}, tokenizer)
    by_task = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row)
    assert sorted(by_task) == ["text_probe@L0", "text_probe@L1"]
    assert _accuracy(by_task["text_probe@L1"]) >= 0.9
    last = _run({"name": "text_probe", "pooling": "last", **_files(tmp_path)}, tokenizer)
    # Causal: the last token sees the whole text; bidirectional: every token does.
    assert _accuracy(last) >= 0.9
    bidirectional = _run(
        {"name": "text_probe", **_files(tmp_path)}, tokenizer, reading="bidirectional"
    )
    assert _accuracy(bidirectional) >= 0.9


def test_rows_hold_a_probability_consistent_with_the_prediction(tmp_path, tokenizer):
    rows = _run({"name": "text_probe", **_files(tmp_path, shuffled=True)}, tokenizer)
    test = {r["id"]: r for r in _records(30, 2, shuffled=True)}
    for row in rows:
        assert set(row) == {
            "run_id", "task", "example_id", "group", "split", "prediction", "target",
            "correct", "p_correct", "margin",
        }  # fmt: skip
        assert row["target"] == row["group"] == test[row["example_id"]]["label"]
        assert row["prediction"] in CLASSES
        assert 0.0 <= row["p_correct"] <= 1.0
        assert row["correct"] == float(row["prediction"] == row["target"])
        # The gold is predicted exactly when it beats every other class.
        assert (row["margin"] > 0) == bool(row["correct"])
        assert row["margin"] <= row["p_correct"]
        if row["correct"]:
            assert row["p_correct"] > 1 / 3


# ------------------------------------------------------------------------------------ split
def test_one_file_splits_by_a_hash_of_the_id_stably_and_disjointly(tmp_path):
    records = _records(400, 3)
    cfg = {"name": "text_probe", "text_field": "body", "id_field": "id", "test_fraction": 0.25}
    whole = TASKS.parse({**cfg, "path": _write(tmp_path / "a.jsonl", records)}).splits()
    train, test = {e.id for e in whole.train}, {e.id for e in whole.test}
    assert not train & test and train | test == {r["id"] for r in records}
    assert 0.18 < len(test) / 400 < 0.32
    assert test == {r["id"] for r in records if is_test(r["id"], 0.25)}
    # Another order, and fewer records: each example keeps its side (the id alone decides).
    reordered = list(reversed(records[:300]))
    part = TASKS.parse({**cfg, "path": _write(tmp_path / "b.jsonl", reordered)}).splits()
    assert {e.id for e in part.test} == test & {r["id"] for r in reordered}
    assert [e.id for e in part.test] == [r["id"] for r in reordered if r["id"] in test]
    # max_test keeps a sample of the same test examples, and a larger one keeps a superset.
    small = TASKS.parse({**cfg, "path": str(tmp_path / "a.jsonl"), "max_test": 10}).splits()
    larger = TASKS.parse({**cfg, "path": str(tmp_path / "a.jsonl"), "max_test": 20}).splits()
    assert len(small.test) == 10 and {e.id for e in small.test} <= {e.id for e in larger.test}
    assert {e.id for e in larger.test} <= test


def test_parquet_files_are_read_as_jsonl_ones(tmp_path, tokenizer):
    files = _files(tmp_path)
    for split in ("train_path", "test_path"):
        records = [json.loads(line) for line in Path(files[split]).read_text().splitlines()]
        files[split] = str(Path(files[split]).with_suffix(".parquet"))
        pq.write_table(pa.Table.from_pylist(records), files[split])
    from_parquet = _run({"name": "text_probe", **files}, tokenizer)
    from_jsonl = (
        _run({"name": "text_probe", **_files(tmp_path / "j")}, tokenizer) if False else None
    )
    assert from_jsonl is None
    assert from_parquet == _run({"name": "text_probe", **_files(tmp_path)}, tokenizer)


# ----------------------------------------------------------------------------------- errors
def test_bad_data_fails_with_one_line_naming_the_fix(tmp_path, tokenizer):
    files = _files(tmp_path)
    with pytest.raises(ValueError, match=r"text_probe: give path .* or both train_path"):
        TASKS.parse({"name": "text_probe", "train_path": files["train_path"]})
    with pytest.raises(ValueError, match="give either path or train_path and test_path"):
        TASKS.parse({"name": "text_probe", "path": files["train_path"], **files})
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"text_field='text'"):
        _run({"name": "text_probe", **files, "text_field": "text"}, tokenizer)
    with pytest.raises(ValueError, match=r"record 1-0 has no label in label_field='class'"):
        _run({"name": "text_probe", **files, "label_field": "class"}, tokenizer)
    parquet = tmp_path / "p" / "train.parquet"
    parquet.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(_records(4, 1)), parquet)
    with pytest.raises(SourceError, match=r"has no field 'class'.*set metadata_fields"):
        _run(
            {"name": "text_probe", **files, "train_path": str(parquet), "label_field": "class"},
            tokenizer,
        )
    with pytest.raises(ValueError, match=r"id '1-0' occurs twice"):
        twice = _write(tmp_path / "twice.jsonl", _records(3, 1) * 2)
        _run({"name": "text_probe", **files, "train_path": twice}, tokenizer)


def test_a_test_label_unseen_in_training_is_refused(tmp_path, tokenizer):
    files = _files(tmp_path)
    test = _records(5, 2)
    test[3]["label"] = "metal"
    files["test_path"] = _write(tmp_path / "test.jsonl", test)
    with pytest.raises(ValueError, match=r"test example 2-3 has label 'metal', which no training"):
        _run({"name": "text_probe", **files}, tokenizer)


def test_a_label_the_tokenizer_cannot_spell_is_refused(tmp_path, tokenizer):
    files = _files(tmp_path)
    train = _records(20, 1)
    train[0]["label"] = "unheard"
    files["train_path"] = _write(tmp_path / "train.jsonl", train)
    with pytest.raises(ValueError, match=r"text_finetune: label 'unheard' holds a token"):
        _run({"name": "text_finetune", "steps": 1, **files}, tokenizer)


def test_finetune_refuses_a_bidirectional_model_and_points_to_the_probe(tmp_path, tokenizer):
    with pytest.raises(ValueError, match=r"cannot read .* bidirectional .* use .*text_probe"):
        _run({"name": "text_finetune", **_files(tmp_path)}, tokenizer, reading="bidirectional")


# --------------------------------------------------------------------------------- finetune
FINETUNE = {"name": "text_finetune", "steps": 150, "batch_size": 16, "lr": 3e-3}


def test_full_finetune_learns_the_keyword_labels_on_a_copy(tmp_path, tokenizer):
    model = _model(tokenizer)
    before = _snapshot(model)
    files = _files(tmp_path)
    untuned = _run({**FINETUNE, **files, "steps": 1, "lr": 1e-9}, tokenizer, model)
    rows = _run({**FINETUNE, **files}, tokenizer, model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert _accuracy(rows) >= 0.9
    mean_p = sum(r["p_correct"] for r in rows) / len(rows)
    assert mean_p > sum(r["p_correct"] for r in untuned) / len(untuned) + 0.25
    for row in rows:  # the probabilities are over the three classes
        assert row["correct"] == float(row["prediction"] == row["target"])
        assert (row["margin"] > 0) == bool(row["correct"])


def test_lora_trains_only_the_adapters_and_leaves_the_model(tmp_path, tokenizer):
    model = _model(tokenizer)
    before = _snapshot(model)
    lora = {**FINETUNE, **_files(tmp_path), "method": "lora", "lora_r": 4}
    cfg = TASKS.parse({**lora, "steps": 10})
    splits = cfg.splits()
    subject = Subject(model, tokenizer, None, "r0", 0, Reader())
    pairs = verbalizer(tokenizer, model, splits.classes, cfg).pairs(splits.train)
    tuned = cfg.build().tune(subject, pairs).model
    trainable = {n for n, p in tuned.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    for name, param in tuned.named_parameters():
        if name not in trainable:
            base = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(param, before[base]), name
    rows = _run(lora, tokenizer, model)  # the adapters merged in to score
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert _accuracy(rows) > 0.5  # above chance (1/3) with the adapters alone


def test_verbalized_examples_fit_the_model_and_end_labels_with_eos(tmp_path, tokenizer):
    cfg = TASKS.parse({**FINETUNE, **_files(tmp_path), "max_tokens": 1000})
    model = build_model(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1,
                                    n_heads=2, max_seq_len=6))  # fmt: skip
    words = verbalizer(tokenizer, model, CLASSES, cfg)
    eos = tokenizer.special.eos
    assert all(ids[-1] == eos and len(ids) == 2 for ids in words.labels.values())
    prompt, answer = words.pairs(cfg.splits().train)[0]
    # <bos> + 3 text tokens, the separator (the word tokenizer has no newline: <eos><bos>).
    assert prompt[:1] == [tokenizer.special.bos] and prompt[-2:] == [eos, tokenizer.special.bos]
    assert len(prompt) + len(answer) == 6


def test_a_killed_finetune_resumes_to_the_same_rows(tmp_path, tokenizer, monkeypatch):
    from transferlab.train.engine import Engine

    cfg = {**FINETUNE, **_files(tmp_path), "steps": 8, "checkpoint_interval": 3}
    whole = _run(cfg, tokenizer)
    task = TASKS.parse(cfg).build()
    task.work_dir = tmp_path / "work"
    real = Engine.train_step

    def killed_at_step_5(self):
        if self.step == 5:
            raise RuntimeError("killed")
        return real(self)

    with monkeypatch.context() as patch:
        patch.setattr(Engine, "train_step", killed_at_step_5)
        with pytest.raises(RuntimeError, match="killed"):
            task.run(_model(tokenizer), tokenizer, None, "r0", seed=0)
    steps = []

    def counted(self):
        steps.append(self.step + 1)
        return real(self)

    monkeypatch.setattr(Engine, "train_step", counted)
    assert task.run(_model(tokenizer), tokenizer, None, "r0", seed=0) == whole
    assert steps == [4, 5, 6, 7, 8]  # from the step-3 checkpoint on


# ------------------------------------------------------------------------- classifier head
CLASSIFIER = {**FINETUNE, "head": "classifier", "steps": 60}


@pytest.mark.parametrize("reading", ["causal", "prefix", "bidirectional"])
def test_a_classifier_head_learns_the_keyword_labels_under_every_reading(
    tmp_path, tokenizer, reading
):
    model = _model(tokenizer)
    before = _snapshot(model)
    rows = _run({**CLASSIFIER, **_files(tmp_path)}, tokenizer, model, reading=reading)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert len(rows) == 30 and _accuracy(rows) >= 0.9
    for row in rows:
        assert row["correct"] == float(row["prediction"] == row["target"])
        assert (row["margin"] > 0) == bool(row["correct"])


def test_the_head_decides_the_readings_and_stays_out_of_the_default_key(tmp_path, tokenizer):
    files = _files(tmp_path)
    verbalizer_cfg = TASKS.parse({"name": "text_finetune", **files})
    classifier_cfg = TASKS.parse({"name": "text_finetune", "head": "classifier", **files})
    assert "head" not in verbalizer_cfg.to_dict()  # evaluations keyed before it keep their keys
    assert classifier_cfg.to_dict()["head"] == "classifier"
    assert TASKS.parse(classifier_cfg.to_dict()) == classifier_cfg
    assert TASKS.get("text_finetune").readings == ("causal", "prefix")  # the default's
    assert verbalizer_cfg.readings == ("causal", "prefix")
    assert classifier_cfg.readings == ("causal", "bidirectional", "prefix", "discriminator")
    with pytest.raises(ValueError) as refused:
        _run({"name": "text_finetune", **files}, tokenizer, reading="bidirectional")
    assert "text_finetune with head: verbalizer fine-tunes and scores the label after the " in (
        str(refused.value)
    )
    assert "(head: classifier reads any model)" in str(refused.value)


def test_a_killed_classifier_finetune_resumes_to_the_same_rows(tmp_path, tokenizer, monkeypatch):
    from transferlab.train.engine import Engine

    cfg = {**CLASSIFIER, **_files(tmp_path), "steps": 6, "checkpoint_interval": 2}
    whole = _run(cfg, tokenizer, reading="bidirectional")
    task = TASKS.parse(cfg).build()
    task.work_dir = tmp_path / "work"
    real = Engine.train_step

    def killed_at_step_3(self):
        if self.step == 3:
            raise RuntimeError("killed")
        return real(self)

    with monkeypatch.context() as patch:
        patch.setattr(Engine, "train_step", killed_at_step_3)
        with pytest.raises(RuntimeError, match="killed"):
            task.run(_model(tokenizer), tokenizer, None, "r0", 0, "bidirectional")
    assert task.run(_model(tokenizer), tokenizer, None, "r0", 0, "bidirectional") == whole


def test_an_mlm_run_is_fine_tuned_with_a_classifier_head_end_to_end(tmp_path, tiny_config):
    from transferlab.train import load_run, train

    loaded = load_run(train(tiny_config("objective.name=mlm", "trainer.max_steps=4")).run_dir)
    tokenizer = TextTokenizer.from_file(loaded.tokenizer_path)
    reading = loaded.config.objective.attention
    rows = _run({**CLASSIFIER, **_files(tmp_path), "steps": 3}, tokenizer, loaded.model,
                reading=reading)  # fmt: skip
    assert reading == "bidirectional"
    assert sorted(r["example_id"] for r in rows) == sorted(r["id"] for r in _records(30, 2))
    assert all(r["prediction"] in CLASSES for r in rows)


# ------------------------------------------------------------------------------ experiment
def test_an_experiment_pretrains_on_the_corpus_and_pairs_the_rows_across_variants(
    tmp_path, monkeypatch
):
    from transferlab.experiment import ExperimentSpec, load_results, run_experiment
    from transferlab.worlds.bios import BiosConfig

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))

    def no_world(self):
        raise AssertionError("a world was built for tasks on the user's files")

    monkeypatch.setattr(BiosConfig, "build", no_world)
    files = _files(tmp_path)
    corpus = [{"text": f"{r['body']} {r['label']}"} for r in _records(200, 5)]
    source = {"name": "jsonl", "path": _write(tmp_path / "corpus.jsonl", corpus)}
    spec = ExperimentSpec.model_validate(
        {
            "name": "classify",
            "base": {
                "tokenizer": {"kind": "word"},
                "data": {"sources": [source], "seq_len": 32, "val_fraction": 0.1},
                "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
                "schedule": {"name": "constant"},
                "trainer": {
                    "max_steps": 2,
                    "batch_size": 4,
                    "eval_interval": 2,
                    "eval_batches": 1,
                    "checkpoint_interval": 2,
                    "progress": False,
                },
            },
            "axes": {"width": {"narrow": {}, "wide": {"model.d_model": 48}}},
            "seeds": [0],
            "tasks": [
                {"name": "text_probe", "layer": 0, **files},
                {"name": "text_finetune", "steps": 3, "batch_size": 8, **files},
            ],
            "compare": {"baseline": "narrow", "metric": "p_correct"},
        }
    )
    result = run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    rows = load_results(tmp_path / "exp").examples.to_pylist()
    ids = {
        (variant, task): sorted(r["example_id"] for r in rows if (r["variant"], r["task"]) == (variant, task))
        for variant in ("narrow", "wide")
        for task in ("text_probe", "text_finetune")
    }  # fmt: skip
    expected = sorted(r["id"] for r in _records(30, 2))
    assert all(found == expected for found in ids.values())
    probe = [r for r in rows if r["task"] == "text_probe"]
    assert _accuracy(probe) == 1.0  # layer-0 means: one feature vector per keyword
    compared = {
        c["task"]: c["n_examples"]
        for c in result.summary["comparisons"]
        if c["metric"] == "correct"
    }
    assert compared == {"text_probe": 30, "text_finetune": 30}
