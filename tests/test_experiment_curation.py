"""Curation as an experiment axis on real code: raw vs curated standard-library data, judged by
the code tasks on held-out files, with no synthetic world built at any point."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from transferlab.data.prepare import prepare_data
from transferlab.experiment import ExperimentSpec, load_results, plan_experiment, run_experiment
from transferlab.experiment.estimate import estimate_seconds
from transferlab.worlds.bios import BiosConfig

pytestmark = pytest.mark.filterwarnings("ignore::transferlab.data.sources.SkippedDocumentsWarning")

POOL = {"name": "python_stdlib", "side": "pretraining", "heldout_fraction": 0.5}
CURATED = {
    "name": "curated",
    "label": "stdlib",
    "source": {**POOL, "modules": ["json", "email"]},
    "curation": {
        "dedup": {"exact": True, "minhash": None},
        "classifier": {
            "positive": [{**POOL, "modules": ["json"]}],
            "negative": [{**POOL, "modules": ["json", "email"]}],
            "threshold": 0.5,
        },
    },
}
TASKS = {"modules": ["json", "email"], "heldout_fraction": 0.5, "max_tokens": 32}


def _spec() -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "curation",
            "base": {
                "tokenizer": {"kind": "bpe", "vocab_size": 300},
                "data": {"seq_len": 32, "val_fraction": 0.1},
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
            "axes": {
                "data": {
                    "raw": {
                        "data.sources": [{**POOL, "label": "stdlib", "modules": ["json", "email"]}]
                    },
                    "curated": {"data.sources": [CURATED]},
                }
            },
            "seeds": [0, 1],
            "tasks": [
                {"name": "code_likelihood", "max_examples": 12, **TASKS},
                {"name": "code_function_name", "max_examples": 12, **TASKS},
            ],
            "compare": {"baseline": "raw", "metric": "bits_per_byte"},
            "expect": {"variant": "curated", "task": "code_likelihood"},
        }
    )


def test_raw_vs_curated_code_runs_end_to_end_without_a_world(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))

    def no_world(self):
        raise AssertionError("a world was built for tasks on real code")

    monkeypatch.setattr(BiosConfig, "build", no_world)
    result = run_experiment(_spec(), tmp_path / "exp", log=lambda _: None)

    tables = load_results(tmp_path / "exp")
    rows = tables.examples.to_pylist()
    per_run = {(r["variant"], r["seed"], r["task"]) for r in rows}
    assert len(per_run) == 2 * 2 * 2 and len(rows) == 2 * 2 * 2 * 12
    # Both variants are judged on the same held-out examples, so the comparison is paired.
    ids = {
        v: sorted(r["example_id"] for r in rows if r["variant"] == v) for v in ("raw", "curated")
    }
    assert ids["raw"] == ids["curated"]
    comparison = next(
        c
        for c in result.summary["comparisons"]
        if c["task"] == "code_likelihood" and c["metric"] == "bits_per_byte"
    )
    assert (comparison["variant"], comparison["reference"], comparison["n_examples"]) == (
        "curated",
        "raw",
        12,
    )
    assert comparison["low"] <= comparison["diff"] <= comparison["high"]
    assert comparison["higher_is_better"] is False  # as code_likelihood declares it
    verdict = result.summary["verdict"]
    assert verdict["task"] == "code_likelihood"
    assert "(bits_per_byte, lower is better)" in verdict["text"]
    # Each task is analysed on exactly what it declares: bits per byte for code_likelihood, the
    # choice scores for code_function_name, which is not compared on bits per byte and says so.
    declared = {
        "code_likelihood": {"bits_per_byte"},
        "code_function_name": {"correct", "acc_norm", "p_correct", "margin", "norm_p_correct"},
    }
    for section in ("estimates", "comparisons", "correlations"):
        for task, metrics in declared.items():
            found = {e["metric"] for e in result.summary[section] if e["task"] == task}
            assert found == metrics, (section, task)
    assert [s["task"] for s in result.summary["skipped"]] == ["code_function_name"]
    report = result.report.read_text()
    assert "<th>bits_per_byte</th>" in report and ">nan<" not in report

    # results/data.parquet (and the report's Data section): one row per variant and domain.
    data = {
        row["variant"]: row
        for row in pq.read_table(tmp_path / "exp" / "results" / "data.parquet").to_pylist()
    }
    assert set(data) == {"raw", "curated"} and data["raw"]["domain"] == "stdlib"
    assert data["raw"]["curation_kept_docs"] is None
    kept, read = data["curated"]["curation_kept_docs"], data["curated"]["curation_input_docs"]
    assert 0 < kept < read
    assert f"<td>{kept:,} of {read:,} docs</td>" in report

    # Each variant's data stage is shared by its seeds; the classifier kept fewer documents.
    domains = {}
    for run in tables.runs.to_pylist():
        info = json.loads(
            (tmp_path / "store" / "runs" / run["run_id"] / "run_info.json").read_text()
        )
        data = json.loads(
            (tmp_path / "store" / "data" / info["data_key"] / "info.json").read_text()
        )
        domains.setdefault(run["variant"], set()).add(json.dumps(data["domains"]))
    assert all(len(stages) == 1 for stages in domains.values())
    raw, curated = (json.loads(domains[v].pop())[0] for v in ("raw", "curated"))
    assert raw["name"] == curated["name"] == "stdlib"
    assert 0 < curated["docs"] < raw["docs"]


def test_dry_run_estimate_neither_curates_nor_tokenizes_real_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    plan = plan_experiment(_spec())
    capped = estimate_seconds(plan)  # vocabulary: the tokenizer's configured 300 tokens
    assert capped > 0
    assert not (tmp_path / "store" / "data").exists()
    assert not (tmp_path / "store" / "curation").exists()
    built = prepare_data(plan.runs[0].config)  # once built, the real vocabulary counts
    assert built.vocab_size <= 300 and estimate_seconds(plan) <= capped
