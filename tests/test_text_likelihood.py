"""``text_likelihood``: bits per byte of a user's held-out documents, per document and domain,
without the documents the run pretrained on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from pydantic import ValidationError

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import train_tokenizer
from transferlab.evaluate import IDENTITY_COLUMNS
from transferlab.evaluate.likelihood import rolling_windows
from transferlab.models import build_model

DE = ["Der Hund läuft schnell über die Wiese.", "Die Katze schläft auf dem Sofa."]
EN = ["The dog runs quickly across the meadow.", "The cat sleeps on the sofa all day long."]
ES = ["El perro corre por el campo.", "El gato duerme en el sofá."]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), DE + EN + ES)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=256
    )
    return build_model(cfg).eval()


def _logprob(model, inputs: list[int], targets: list[int]) -> float:
    """Summed log p of ``targets``, the last ``len(targets)`` tokens after ``inputs``' positions:
    one plain forward pass over ``inputs``, read at the positions predicting them."""
    with torch.no_grad():
        logp = model(torch.tensor([inputs])).double().log_softmax(-1)[0]
    first = len(inputs) - len(targets)
    return sum(float(logp[first + i, t]) for i, t in enumerate(targets))


def _task(sources: list[dict], **fields):
    return TASKS.parse({"name": "text_likelihood", "sources": sources, **fields})


def test_rolling_windows_predict_every_token_once_within_the_window() -> None:
    ids = list(range(10, 30))  # 20 tokens, windows of 8
    requests = rolling_windows(ids, bos=1, window=8)
    predicted = [t for _, (choice,) in requests for t in choice]
    assert predicted == ids  # every token once, in order
    assert requests[0] == ([1], [ids[:8]])
    assert requests[1] == ([ids[7]], [ids[8:16]])  # a full window: one token of context
    assert requests[2] == (ids[11:16], [ids[16:20]])  # the last one reaches further back
    assert all(len(c) + len(choice) - 1 == 8 for c, (choice,) in requests)
    assert rolling_windows(ids[:5], bos=1, window=8) == [([1], [ids[:5]])]
    assert rolling_windows([], bos=1, window=8) == []


def test_bits_per_byte_equals_a_hand_computation_short_and_windowed(
    tmp_path, tokenizer, model
) -> None:
    short, long_text = EN[0], " ".join(DE + EN + ES)
    path = _write_jsonl(tmp_path / "held.jsonl", [{"text": short}, {"text": long_text}])
    bos = tokenizer.special.bos
    ids_short, ids_long = tokenizer.encode(short), tokenizer.encode(long_text)
    assert 8 < len(ids_long) < 255  # longer than the small window, within the model's

    def bpb(logprob: float, text: str) -> float:
        return -logprob / math.log(2) / len(text.encode("utf-8"))

    whole = _task([{"name": "jsonl", "path": str(path), "label": "en"}]).build()
    rows = {r["example_id"]: r for r in whole.run(model, tokenizer, None, "r0", 0)}
    assert list(rows) == ["en:held.jsonl:1", "en:held.jsonl:2"]
    # One window holds each document: the full-sequence score after <bos>.
    full_short = _logprob(model, [bos, *ids_short[:-1]], ids_short)
    full_long = _logprob(model, [bos, *ids_long[:-1]], ids_long)
    assert rows["en:held.jsonl:1"]["bits_per_byte"] == pytest.approx(bpb(full_short, short))
    assert rows["en:held.jsonl:2"]["bits_per_byte"] == pytest.approx(bpb(full_long, long_text))

    windowed = _task([{"name": "jsonl", "path": str(path), "label": "en"}], max_tokens=8)
    rows = {r["example_id"]: r for r in windowed.build().run(model, tokenizer, None, "r0", 0)}
    n, expected, end = len(ids_long), _logprob(model, [bos, *ids_long[:7]], ids_long[:8]), 8
    while end < n:  # windows of 8 predicted tokens, each input 8 tokens long
        stop = min(end + 8, n)
        expected += _logprob(model, ids_long[stop - 9 : stop - 1], ids_long[end:stop])
        end = stop
    assert rows["en:held.jsonl:2"]["bits_per_byte"] == pytest.approx(bpb(expected, long_text))
    assert expected != pytest.approx(full_long)  # the window changed what conditions a token


def test_every_file_format_is_read(tmp_path, tokenizer, model) -> None:
    datasets = pytest.importorskip("datasets")
    (tmp_path / "txt").mkdir()
    for i, text in enumerate(DE):
        (tmp_path / "txt" / f"d{i}.txt").write_text(text)
    _write_jsonl(tmp_path / "en.jsonl", [{"text": t, "id": f"e{i}"} for i, t in enumerate(EN)])
    pq.write_table(pa.table({"text": ES}), tmp_path / "es.parquet")
    datasets.Dataset.from_dict({"text": EN[:1]}).save_to_disk(str(tmp_path / "hf"))
    sources = [
        {"name": "text_files", "path": str(tmp_path / "txt"), "label": "de"},
        {"name": "jsonl", "path": str(tmp_path / "en.jsonl"), "id_field": "id", "label": "en"},
        {"name": "parquet", "path": str(tmp_path / "es.parquet"), "label": "es"},
        {"name": "hf_dataset", "path": str(tmp_path / "hf"), "label": "hf"},
    ]
    rows = _task(sources).build().run(model, tokenizer, None, "r0", 0)
    assert all(tuple(r) == (*IDENTITY_COLUMNS, "bits_per_byte") for r in rows)
    assert [(r["group"], r["example_id"]) for r in rows] == [
        ("de", "de:d0.txt"),
        ("de", "de:d1.txt"),
        ("en", "en:e0"),
        ("en", "en:e1"),
        ("es", "es:es.parquet:0"),
        ("es", "es:es.parquet:1"),
        ("hf", "hf:0"),
    ]
    assert all(r["bits_per_byte"] > 0 and r["task"] == "text_likelihood" for r in rows)
    # The same English text scores the same from jsonl and from the saved dataset.
    by_id = {r["example_id"]: r["bits_per_byte"] for r in rows}
    assert by_id["hf:0"] == pytest.approx(by_id["en:e0"])


def test_group_by_a_metadata_field_and_a_per_domain_sample(tmp_path, tokenizer, model) -> None:
    records = [{"text": t, "language": "de"} for t in DE] + [
        {"text": t, "language": "es"} for t in ES
    ]
    a = _write_jsonl(tmp_path / "a.jsonl", records[:3])
    b = _write_jsonl(tmp_path / "b.jsonl", records[3:])
    sources = [
        {"name": "jsonl", "path": str(a), "label": "a"},
        {"name": "jsonl", "path": str(b), "label": "b"},
    ]
    task = _task(sources, group_by="language").build()
    rows = task.run(model, tokenizer, None, "r0", 0)
    assert [(r["group"], r["example_id"]) for r in rows] == [
        ("de", "a:a.jsonl:1"),
        ("de", "a:a.jsonl:2"),
        ("es", "a:a.jsonl:3"),
        ("es", "b:b.jsonl:1"),
    ]
    assert [(n.name, n.group, n.value) for n in task.notes] == [
        ("documents", "de", 2),
        ("documents", "es", 2),
    ]  # no run directory: nothing is known about pretraining, so no overlap is counted
    one = _task(sources, group_by="language", max_documents=1, seed=3).build()
    kept = one.run(model, tokenizer, None, "r0", 0)
    assert sorted(r["group"] for r in kept) == ["de", "es"]  # at most one per domain
    again = _task(sources, group_by="language", max_documents=1, seed=3).build()
    assert [r["example_id"] for r in again.run(model, tokenizer, None, "r1", 5)] == [
        r["example_id"] for r in kept
    ]  # the sample depends on the task's seed only, not on the run
    _write_jsonl(b, [{"text": ES[1]}])
    with pytest.raises(ValueError, match="document b:b.jsonl:1 has no 'language' field"):
        task.run(model, tokenizer, None, "r0", 0)


def test_config_errors_name_the_problem(tmp_path) -> None:
    jsonl = {"name": "jsonl", "path": "x.jsonl"}
    with pytest.raises(ValidationError, match="repeat a name; give each a distinct label"):
        _task([jsonl, jsonl])
    with pytest.raises(ValidationError, match="source 'text_files' .* has no records"):
        _task([{"name": "text_files", "path": "d"}], group_by="language")
    with pytest.raises(ValidationError, match="not among source 'jsonl'.s metadata_fields"):
        _task([{**jsonl, "metadata_fields": ["topic"]}], group_by="language")
    with pytest.raises(ValidationError, match="sources"):
        _task([])


def test_a_bidirectional_model_is_refused_before_any_work(tmp_path, tokenizer, model) -> None:
    task = _task([{"name": "jsonl", "path": str(tmp_path / "missing.jsonl")}]).build()
    with pytest.raises(ValueError) as err:
        task.run(model, tokenizer, None, "r0", 0, reading="bidirectional")
    # The alternatives it suggests are the registered tasks on real text that read it.
    message = str(err.value)
    assert message.startswith(
        "task 'text_likelihood' cannot read this model: it is read with bidirectional attention "
        "and text_likelihood needs a likelihood for bits per byte, which a bidirectional model "
        "does not give; use "
    )
    assert message.endswith("an objective with causal or prefix attention")


SUBJECTS = {
    "en": ["The dog", "A cat", "My friend", "The teacher", "Our neighbour", "The child"],
    "de": ["Der Hund", "Eine Katze", "Mein Freund", "Die Lehrerin", "Unser Nachbar", "Das Kind"],
}
ACTIONS = {
    "en": ["reads a book", "walks home", "sings loudly", "eats bread", "sleeps late"],
    "de": ["liest ein Buch", "geht nach Hause", "singt laut", "isst Brot", "schläft lange"],
}


def _corpus(language: str) -> list[str]:
    """30 distinct short documents in ``language``."""
    subjects, actions = SUBJECTS[language], ACTIONS[language]
    return [
        f"{s} {a} and {b}."
        for s in subjects
        for a, b in zip(actions, [*actions[1:], actions[0]], strict=True)
    ]


def _data_config(tmp_path: Path, tiny_config, **mixture):
    paths = {}
    for language in ("en", "de"):
        records = [{"text": text} for text in _corpus(language)]
        paths[language] = _write_jsonl(tmp_path / f"{language}.jsonl", records)
    sources = [{"name": "jsonl", "path": str(p), "label": lang} for lang, p in paths.items()]
    overrides = [f"data.sources={json.dumps(sources)}", "tokenizer.kind=bpe"]
    overrides += ["tokenizer.vocab_size=300", "data.val_fraction=0.2"]
    if mixture:
        overrides.append(f"data.mixture={json.dumps(mixture)}")
    return tiny_config(*overrides)


def test_the_data_stage_records_exactly_its_training_texts(tmp_path, tiny_config, monkeypatch):
    from transferlab.data.digests import TRAIN_DIGESTS_FILE, TextDigests, training_digests
    from transferlab.data.prepare import prepare_data

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = _data_config(tmp_path, tiny_config, weights={"en": 1.0, "de": 0.0})
    data = prepare_data(cfg)
    trained = training_digests(data.root, cfg)
    assert (data.root / TRAIN_DIGESTS_FILE).is_file()
    info = json.loads((data.root / "info.json").read_text())
    val_docs = {d["name"]: d["docs"] for d in info["validation"]["domains"]}
    en_seen = [text for text in _corpus("en") if text in trained]
    # Every English text trains except its validation ones; German (weight 0) never does.
    assert len(en_seen) == len(_corpus("en")) - val_docs["en"] and len(trained) == len(en_seen)
    assert not any(text in trained for text in _corpus("de"))
    # Compared after whitespace normalization only.
    assert ("  " + en_seen[0].replace(" ", "\n\t ")) in trained
    assert en_seen[0].upper() not in trained
    # A stage built before the file existed: every document of the corpus counts (a superset).
    (data.root / TRAIN_DIGESTS_FILE).unlink()
    legacy = training_digests(data.root, cfg)
    assert all(text in legacy for text in _corpus("en") + _corpus("de"))
    assert TextDigests.of_texts(_corpus("en")).union(trained).values.tolist() == sorted(
        TextDigests.of_texts(_corpus("en")).values.tolist()
    )


def test_an_experiment_pairs_documents_across_variants_and_counts_the_overlap(
    tmp_path, monkeypatch
):
    from rich.console import Console
    from tests.tiny_experiment import tiny_base

    from transferlab.experiment import ExperimentSpec, load_results, run_experiment
    from transferlab.report import print_summary, write_report

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    corpus = {}
    for language in ("en", "de"):
        path = tmp_path / f"{language}.jsonl"
        corpus[language] = {"name": "jsonl", "path": str(path), "label": language}
        _write_jsonl(path, [{"text": text} for text in _corpus(language)])
    # The held-out file holds three new texts per language and every German corpus text again,
    # its spaces turned into line breaks: the same text after whitespace normalization.
    held = [{"text": t, "language": "en"} for t in EN + ["A bird sings in the tree."]]
    held += [{"text": t, "language": "de"} for t in DE + ["Ein Vogel singt im Baum."]]
    held += [{"text": t.replace(" ", "\n"), "language": "de"} for t in _corpus("de")]
    _write_jsonl(tmp_path / "heldout.jsonl", held)
    base = tiny_base(2)
    base.pop("world")
    base["tokenizer"] = {"kind": "bpe", "vocab_size": 300}
    base["data"]["val_fraction"] = 0.2
    spec = ExperimentSpec.model_validate(
        {
            "name": "own-text",
            "base": base,
            "axes": {
                "data": {
                    "en": {"data.sources": [corpus["en"]]},
                    "mixed": {"data.sources": [corpus["en"], corpus["de"]]},
                }
            },
            "seeds": [0, 1],
            "tasks": [
                {
                    "name": "text_likelihood",
                    "sources": [{"name": "jsonl", "path": str(tmp_path / "heldout.jsonl")}],
                    "group_by": "language",
                }
            ],
            "compare": {"baseline": "en", "metric": "bits_per_byte"},
        }
    )
    result = run_experiment(spec, tmp_path / "exp", log=lambda _: None)

    rows = load_results(tmp_path / "exp").examples.to_pylist()
    ids = {
        (v, s): {r["example_id"] for r in rows if (r["variant"], r["seed"]) == (v, s)}
        for v in ("en", "mixed")
        for s in (0, 1)
    }
    # 24 of the 30 German corpus texts trained the mixed variant (6 went to validation), so
    # they are left out of its rows; the English-only variant saw none of them.
    assert len(ids["en", 0]) == 3 + 3 + 30 and len(ids["mixed", 0]) == 3 + 3 + 6
    assert ids["mixed", 0] < ids["en", 0] and ids["en", 0] == ids["en", 1]
    comparison = next(c for c in result.summary["comparisons"] if c["metric"] == "bits_per_byte")
    assert (comparison["variant"], comparison["reference"]) == ("mixed", "en")
    assert comparison["n_examples"] == 12  # paired on the documents both were scored on
    notes = {
        (n["variant"], n["name"], n["group"]): (n["low"], n["high"], n["runs"])
        for n in result.summary["notes"]
    }
    assert notes == {
        ("en", "documents", "en"): (3, 3, 2),
        ("en", "in_pretraining", "en"): (0, 0, 2),
        ("en", "documents", "de"): (33, 33, 2),
        ("en", "in_pretraining", "de"): (0, 0, 2),
        ("mixed", "documents", "en"): (3, 3, 2),
        ("mixed", "in_pretraining", "en"): (0, 0, 2),
        ("mixed", "documents", "de"): (9, 9, 2),
        ("mixed", "in_pretraining", "de"): (24, 24, 2),
    }
    groups = {(g["variant"], g["group"]) for g in result.summary["groups"]}
    assert groups == {(v, lang) for v in ("en", "mixed") for lang in ("en", "de")}

    console = Console(record=True, width=200)
    print_summary(tmp_path / "exp", console)
    text = " ".join(console.export_text().split())  # titles wrap at their table's width
    assert "text_likelihood: bits_per_byte (lower is better) per group" in text
    assert "│ in_pretraining │ de │ 0 │ 24 │" in text  # per variant: en, mixed
    assert "in_pretraining: held-out documents left out because the pretraining data" in text
    html = write_report(tmp_path / "exp").read_text()
    assert "Task notes" in html and "in_pretraining" in html


def test_a_chain_of_stages_has_seen_the_texts_of_every_stage(tmp_path, tiny_config, monkeypatch):
    from transferlab.data.digests import TRAIN_DIGESTS_FILE, TextDigests
    from transferlab.data.prepare import keyed_data_dir
    from transferlab.train.run_dir import RUN_INFO_FILE, RunDir
    from transferlab.train.trained_texts import trained_texts

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))

    def stage(name: str, texts: list[str], *overrides: str) -> Path:
        """A run directory as the trainer leaves it, its data stage holding ``texts``."""
        run = RunDir(tmp_path / name)
        run.write_config(tiny_config(f"name={name}", *overrides))
        (run.root / RUN_INFO_FILE).write_text(json.dumps({"data_key": f"key-{name}"}))
        keyed_data_dir(f"key-{name}").mkdir(parents=True)
        TextDigests.of_texts(texts).save(keyed_data_dir(f"key-{name}") / TRAIN_DIGESTS_FILE)
        return run.root

    parent = stage("parent", EN)
    child = stage("child", DE, f"init.from_run={parent}")
    seen = trained_texts(child)
    assert all(text in seen for text in EN + DE) and len(seen) == len(EN + DE)
    assert not any(text in seen for text in ES)
    assert len(trained_texts(parent)) == len(EN)
