"""The ``curated`` source: a curation pipeline as a source of a run's data, cached by content."""

import json

import pytest

from transferlab.artifacts import cache_root, is_complete
from transferlab.config import RunConfig, apply_overrides, validate
from transferlab.curation import CurationConfig, curate, inspect
from transferlab.curation.pipeline import write_curation
from transferlab.curation.source import CuratedSourceConfig
from transferlab.data.prepare import data_key, prepare_data
from transferlab.data.sources import JsonlConfig

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def _corpus(path, n_docs: int = 30, copies: int = 3) -> str:
    """``n_docs`` distinct documents, every one of the first ten written ``copies`` times."""
    with open(path, "w") as f:
        for i in range(n_docs):
            text = " ".join(WORDS[(i * 7 + k) % len(WORDS)] + str(i) for k in range(12))
            for _ in range(copies if i < 10 else 1):
                f.write(json.dumps({"text": text}) + "\n")
    return str(path)


def _curated(path: str, **curation) -> CuratedSourceConfig:
    return validate(
        CuratedSourceConfig,
        {
            "label": "clean",
            "source": {"name": "jsonl", "path": path},
            "curation": {"dedup": {"exact": True, "minhash": None}, **curation},
        },
    )


def test_yields_what_the_pipeline_keeps_under_its_own_label(tmp_path):
    path = _corpus(tmp_path / "web.jsonl")
    source = _curated(path)
    docs = list(source.iter_documents())
    expected = list(
        curate(
            source.curation, JsonlConfig(path=path).iter_documents(), tmp_path / "out"
        ).documents()
    )
    assert [(d.id, d.text) for d in docs] == [(d.id, d.text) for d in expected]
    assert len(docs) == 30  # 50 records, 20 exact copies removed
    assert {d.source for d in docs} == {"clean"}
    report = inspect(source.curated_dir())
    assert (report.input.documents, report.output.documents) == (50, 30)
    assert [(s.name, s.docs_removed) for s in report.stages] == [("exact_dedup", 20)]


def test_curation_runs_once_per_config(tmp_path, monkeypatch):
    path = _corpus(tmp_path / "web.jsonl")
    first = _curated(path)
    kept = [d.id for d in first.iter_documents()]

    def fail(*args, **kwargs):
        raise AssertionError("curated again")

    monkeypatch.setattr("transferlab.curation.source.write_curation", fail)
    assert [d.id for d in _curated(path).iter_documents()] == kept  # from the cache
    other = _curated(path, dedup={"exact": False, "minhash": None})
    assert other.curated_dir != first.curated_dir
    with pytest.raises(AssertionError, match="curated again"):
        list(other.iter_documents())
    monkeypatch.undo()
    assert len(list(other.iter_documents())) == 50
    assert other.curated_dir() != first.curated_dir()


def test_a_run_pretrains_on_a_curated_domain_and_curation_is_an_override(tmp_path):
    path = _corpus(tmp_path / "web.jsonl")
    data = {
        "tokenizer": {"kind": "word"},
        "data": {
            "seq_len": 16,
            "val_fraction": 0.1,
            "sources": [
                {
                    "name": "curated",
                    "label": "web",
                    "source": {"name": "jsonl", "path": path},
                    "curation": {"dedup": {"exact": True, "minhash": None}},
                }
            ],
        },
    }
    cfg = validate(RunConfig, data)
    info = json.loads((prepare_data(cfg).root / "info.json").read_text())
    assert [(d["name"], d["docs"]) for d in info["domains"]] == [("web", 27)]  # 30 - 3 val
    curation = info["domains"][0]["curation"]  # where to inspect what curation removed
    assert (curation["input_docs"], curation["kept_docs"]) == (50, 30)
    assert curation["dir"] == str(cfg.data.sources[0].curated_dir())
    assert inspect(curation["dir"]).stages[0].docs_removed == 20
    assert info["validation"]["docs"] == 3
    overrides = ["data.sources.0.curation.dedup.exact=false"]
    raw = validate(RunConfig, apply_overrides(data, overrides))
    assert raw.data.sources[0].curation == CurationConfig(dedup={"exact": False, "minhash": None})
    assert data_key(raw) != data_key(cfg)
    raw_info = json.loads((prepare_data(raw).root / "info.json").read_text())
    # Uncurated: validation takes 3 of the 30 distinct texts, and every copy of them leaves
    # training (a text written three times, when picked, takes all three copies along).
    raw_val = raw_info["validation"]["docs"]
    raw_train = raw_info["domains"][0]["docs"]
    assert raw_val == 3 and (50 - raw_train - raw_val) % 2 == 0 and 41 <= raw_train <= 47
    plain = {**data, "data": {**data["data"], "sources": [{"name": "jsonl", "path": path}]}}
    plain_info = json.loads(
        (prepare_data(validate(RunConfig, plain)).root / "info.json").read_text()
    )
    assert "curation" not in plain_info["domains"][0]  # a plain source records no provenance


def test_a_crash_while_curating_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    path = _corpus(tmp_path / "web.jsonl")
    source = _curated(path)
    real = write_curation

    def crash(cfg, documents, out_dir, *args):
        real(cfg, documents, out_dir, *args)  # every file written, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr("transferlab.curation.source.write_curation", crash)
        list(source.iter_documents())
    out = cache_root() / "curation" / "sources"
    # No folder, not even a temporary one; only the stage's lock file.
    assert [p.name for p in out.iterdir() if not p.name.endswith(".lock")] == []
    assert len(list(source.iter_documents())) == 30
    assert is_complete(source.curated_dir())
