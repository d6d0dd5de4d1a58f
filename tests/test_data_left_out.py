"""Honest mixtures: a domain of weight 0 is not read at all, whether variants share a tokenizer
is an explicit and recorded choice, and heavy repetition or curation that keeps almost nothing
warns (``DataWarning``), by thresholds that never change a key."""

from __future__ import annotations

import json
import warnings

import pytest

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.config.schemas import DataWarningsConfig
from transferlab.data import DataWarning, tokenizer_scope
from transferlab.data.mixture_warnings import domain_warnings
from transferlab.data.prepare import (
    UnknownTokensWarning,
    data_key,
    prepare_data,
    validation_domains,
)
from transferlab.experiment import ExperimentSpec, plan_experiment
from transferlab.experiment.results import data_rows
from transferlab.report.html import render
from transferlab.report.inputs import ExperimentRecord
from transferlab.train.run_dir import config_key, result_config


def _write(path, prefix: str, n_docs: int) -> str:
    """``n_docs`` distinct texts whose words (``prefix`` + a number) belong to this file only."""
    with open(path, "w") as f:
        for i in range(n_docs):
            f.write(json.dumps({"text": f"{prefix}{i} {prefix}word {prefix}end{i % 3}"}) + "\n")
    return str(path)


def _data(tmp_path, weights=None, **data) -> dict:
    sources = [
        {"name": "jsonl", "path": _write(tmp_path / "en.jsonl", "en", 20), "label": "en"},
        {"name": "jsonl", "path": _write(tmp_path / "de.jsonl", "de", 20), "label": "de"},
    ]
    out = {"seq_len": 8, "val_fraction": 0.1, "sources": sources, **data}
    if weights is not None:
        out["mixture"] = {"weights": weights}
    return out


def _config(tmp_path, weights=None, **data) -> RunConfig:
    return validate(
        RunConfig, {"tokenizer": {"kind": "word"}, "data": _data(tmp_path, weights, **data)}
    )


def _info(prepared) -> dict:
    return json.loads((prepared.root / "info.json").read_text())


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))


def test_a_weight_0_domain_is_not_tokenized_validated_or_in_the_tokenizer(tmp_path):
    prepared = prepare_data(_config(tmp_path, {"en": 1, "de": 0}))
    info, tokenizer = _info(prepared), prepared.tokenizer()
    assert info["left_out"] == [{"name": "de", "reason": "mixture weight 0"}]
    assert [d["name"] for d in info["domains"]] == ["en"]
    assert list(validation_domains(prepared)) == ["en"]
    assert not (prepared.root / "domains" / "de").exists()
    assert info["tokenizer_scope"] == "variant" and info["tokenizer_domains"] == ["en"]
    assert tokenizer.token_to_id(" enword") is not None
    assert tokenizer.token_to_id(" deword") is None and tokenizer.token_to_id("de0") is None


def test_a_domain_the_weights_do_not_name_is_left_out_too(tmp_path):
    assert _config(tmp_path, {"de": 2}).data.left_out() == ["en"]
    assert _config(tmp_path).data.left_out() == []


def test_a_shared_tokenizer_is_trained_once_on_every_listed_domain(tmp_path, monkeypatch):
    trained = []
    train = tokenizer_scope.train_tokenizer
    monkeypatch.setattr(
        tokenizer_scope, "train_tokenizer", lambda *a: trained.append(1) or train(*a)
    )
    shared = [_config(tmp_path, w, tokenizer_scope="shared") for w in ({"en": 1, "de": 0}, None)]
    infos = [_info(prepare_data(cfg)) for cfg in shared]
    assert infos[0]["tokenizer_sha256"] == infos[1]["tokenizer_sha256"]
    assert [i["tokenizer_domains"] for i in infos] == [["en", "de"], ["en", "de"]]
    assert infos[0]["left_out"] == [{"name": "de", "reason": "mixture weight 0"}]
    assert len(trained) == 1 and len(list((tmp_path / "cache").glob("tokenizers/*/*.json"))) == 1
    assert prepare_data(shared[0]).tokenizer().token_to_id(" deword") is not None
    # Scoped to the variant, the two mixtures train two different tokenizers.
    own = [_info(prepare_data(_config(tmp_path, w))) for w in ({"en": 1, "de": 0}, None)]
    assert own[0]["tokenizer_sha256"] != own[1]["tokenizer_sha256"]
    assert own[1]["tokenizer_sha256"] == infos[1]["tokenizer_sha256"]  # same texts, same bytes


def test_a_weight_0_source_is_never_opened(tmp_path):
    cfg = _config(tmp_path, {"en": 1, "de": 0})
    missing = cfg.data.sources[1].model_copy(update={"path": str(tmp_path / "absent.jsonl")})
    data = cfg.data.model_copy(update={"sources": [cfg.data.sources[0], missing]})
    prepared = prepare_data(cfg.model_copy(update={"data": data}))
    assert _info(prepared)["left_out"] == [{"name": "de", "reason": "mixture weight 0"}]
    natural = data.model_copy(update={"mixture": None})  # now de is read, and is not there
    with pytest.raises(ValueError, match="absent.jsonl' does not exist"):
        prepare_data(cfg.model_copy(update={"data": natural}))


def test_a_child_stage_reads_its_parents_tokenizer_whatever_the_scope(tmp_path):
    parent = prepare_data(_config(tmp_path, {"en": 1, "de": 0}))
    shared = _config(tmp_path, tokenizer_scope="shared")
    data = shared.data.model_copy(update={"tokenizer_file": str(parent.tokenizer_path)})
    with pytest.warns(UnknownTokensWarning):  # de's words: the parent's vocabulary lacks them
        child = prepare_data(shared.model_copy(update={"data": data}))
    assert child.tokenizer_path.read_bytes() == parent.tokenizer_path.read_bytes()
    assert _info(child)["tokenizer_domains"] is None


def test_scope_and_left_out_domains_key_the_data_and_the_run_only_when_they_apply(tmp_path):
    plain, shared = _config(tmp_path), _config(tmp_path, tokenizer_scope="shared")
    assert "tokenizer_scope" not in result_config(plain.to_dict())["data"]
    assert data_key(plain) != data_key(shared) and config_key(plain) != config_key(shared)
    weighted = _config(tmp_path, {"en": 1, "de": 0})
    revived = _config(tmp_path, {"en": 1, "de": 1e-9})
    assert data_key(weighted) != data_key(revived) and config_key(weighted) != config_key(revived)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tokenizer_scope": "shared"}, "data.tokenizer_scope: shared trains one tokenizer on"),
        (
            {"tokenizer_scope": "shared", "tokenizer_file": "t.json"},
            "data.tokenizer_scope: shared trains a tokenizer, data.tokenizer_file reads one",
        ),
    ],
)
def test_a_shared_scope_without_sources_or_with_a_tokenizer_file_fails_in_one_line(
    tmp_path, data, message
):
    if "tokenizer_file" in data:
        data = {**_data(tmp_path), **data}
    with pytest.raises(ConfigError, match=message):
        validate(RunConfig, {"data": data})


def test_an_experiment_refuses_shared_variants_with_different_sources(tmp_path):
    base = {"tokenizer": {"kind": "word"}, "data": _data(tmp_path, tokenizer_scope="shared")}
    en_only = {"data.sources": base["data"]["sources"][:1]}

    def planned(levels: dict, **spec) -> int:
        spec = {"name": "mix", "base": base, "axes": {"mix": levels}, **spec}
        return len(plan_experiment(ExperimentSpec.model_validate(spec), tmp_path / "store").runs)

    with pytest.raises(ConfigError, match="variants 'both' and 'en' .* list different data"):
        planned({"both": {}, "en": en_only})
    assert planned({"both": {}, "en": {"data.mixture": {"weights": {"en": 1, "de": 0}}}}) == 2
    # A later stage reads its parent's tokenizer: its sources may differ by variant.
    later = {"both": {}, "en": {"more.data.sources": en_only["data.sources"]}}
    assert planned(later, stages=[{"name": "pretrain"}, {"name": "more"}]) == 4


def test_a_domain_repeated_past_max_epochs_warns_and_the_threshold_keys_nothing(tmp_path):
    heavy = _config(tmp_path, {"en": 9, "de": 1})  # en: 18 training docs asked for 90% of 36
    with pytest.warns(DataWarning, match=r"domain 'en' is repeated 1\.[0-9] times"):
        prepare_data(_config(tmp_path, {"en": 9, "de": 1}, warnings={"max_epochs": 1.2}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        prepare_data(heavy)  # 1.8 epochs: under the default 4
    loose = _config(tmp_path, {"en": 9, "de": 1}, warnings={"max_epochs": 1.2})
    assert config_key(loose) == config_key(heavy) and data_key(loose) == data_key(heavy)


def test_domain_warnings_name_repetition_and_curation_that_kept_almost_nothing():
    domain = {"name": "web", "docs": 2, "sampled_docs": 1600, "epochs": 800.0}
    curated = {"curation": {"dir": "/c/x", "input_docs": 1000, "kept_docs": 2}}
    limits = DataWarningsConfig()
    assert domain_warnings({**domain, "epochs": 4.0, "sampled_docs": 8}, limits) == []
    assert domain_warnings(domain | curated, limits) == [
        "domain 'web' is repeated 800.0 times (1,600 documents drawn from 2), more than "
        "data.warnings.max_epochs=4: give it more documents, a smaller mixture weight or a "
        "smaller mixture.tokens",
        "curation kept 2 of the 1,000 documents of domain 'web' (0.20%), less than "
        "data.warnings.min_kept_fraction=0.01: loosen its filters (`transferlab data inspect "
        "/c/x` shows what removed them)",
    ]
    assert (
        domain_warnings(
            domain | curated, DataWarningsConfig(max_epochs=1000, min_kept_fraction=0.002)
        )
        == []
    )


def test_the_report_shows_left_out_domains_tokenizers_and_data_warnings(tmp_path):
    base = {"tokenizer": {"kind": "word"}, "data": _data(tmp_path, tokenizer_scope="shared")}
    base["data"]["warnings"] = {"max_epochs": 1.2}
    axes = {"mix": {"en_only": {"data.mixture.weights": {"en": 1, "de": 0}}, "heavy": {}}}
    axes["mix"]["heavy"] = {"data.mixture.weights": {"en": 9, "de": 1}}
    plan = plan_experiment(ExperimentSpec.model_validate({"name": "m", "base": base, "axes": axes}))
    with pytest.warns(DataWarning):
        for run in plan.runs:
            prepare_data(run.config)
    rows = [row for run in plan.runs for row in data_rows(run)]
    assert [(r["variant"], r["domain"], r["left_out"]) for r in rows] == [
        ("en_only", "en", False),
        ("en_only", "de", True),
        ("heavy", "en", False),
        ("heavy", "de", False),
    ]
    assert len({r["tokenizer"] for r in rows}) == 1 and rows[0]["tokenizer"].startswith("shared ")
    assert [bool(r.get("warnings")) for r in rows] == [False, False, True, False]
    page = render(ExperimentRecord(tmp_path, {"name": "m"}, None, None, [], None, data=rows))
    assert "left out (weight 0)" in page and rows[0]["tokenizer"] in page
    assert (
        "<h3>Data warnings</h3>" in page
        and "<li>heavy: domain &#x27;en&#x27; is repeated 1.8 times" in page
    )
