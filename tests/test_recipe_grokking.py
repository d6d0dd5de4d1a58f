"""The grokking recipe: what it states (full batch, the weight-decay axis, expectations fixed in
the file), and a shrunken version run end to end whose results keep train and test apart and
whose grokking steps are the curves' own, censored at the budget (tiny runs decide nothing, so
the verdicts' values are not checked)."""

from __future__ import annotations

import math
from collections import defaultdict

import pyarrow.parquet as pq
import pytest

from tiny_experiment import run_quietly
from transferlab.experiment import load_experiment
from transferlab.recipes import recipe_path
from transferlab.worlds.modular import ModularConfig, split_sizes

PATH = recipe_path("grokking")
MEASURES = [
    "grokking_step",
    "grokking_gap",
    "memorization_step",
    "final_weight_norm",
    "final_fourier_top5",
]
STEPS = 20
TEST_PAIRS = split_sizes(ModularConfig(prime=11, train_fraction=0.5))["test"]
# p = 11 (60 training pairs, the full batch), a one-layer 32-wide model, curves every 5 steps.
SHRUNKEN = [
    "base.world.prime=11",
    "base.model={d_model: 32, n_layers: 1, n_heads: 2}",
    "base.optimizer.lr=1.0e-2",
    f"base.trainer.max_steps={STEPS}",
    "base.trainer.batch_size=60",
    "base.trainer.eval_interval=5",
    "base.trainer.log_interval=5",
    f"base.trainer.checkpoint_interval={STEPS}",
    "base.trainer.progress=false",
    "base.trainer.callbacks=[{name: weight_norm, every: 5}, "
    "{name: fourier_embedding, every: 5, top_k: 2}]",
    "curves.every=5",
    "seeds=[0, 1]",
]


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_every_preset_trains_full_batch_and_varies_only_weight_decay(preset):
    spec = load_experiment(PATH, preset)
    base = spec.base
    sizes = split_sizes(ModularConfig(**base["world"]))
    assert base["trainer"]["batch_size"] == sizes["train"]  # every training equation, each step
    assert base["data"]["seq_len"] == 7  # one equation per window
    assert base["objective"] == "equation_lm"
    assert spec.axes == {
        "weight_decay": {
            "wd0": {"optimizer.weight_decay": 0.0},
            "wd1": {"optimizer.weight_decay": 1.0},
        }
    }
    assert [
        (e.measure or e.task, e.variant, e.reference, e.direction) for e in spec.expectations
    ] == [
        ("grokking_step", "wd1", "wd0", "better"),
        ("test_accuracy", "wd1", "wd0", "better"),
        ("final_fourier_top5", "wd1", "wd0", "better"),
    ]
    assert not {100, 101} & set(spec.seeds)  # the pilots' seeds


def test_the_shrunken_recipe_keeps_splits_apart_and_censors_at_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = load_experiment(PATH, "quick", SHRUNKEN)
    summary = run_quietly(spec, tmp_path / "exp")
    results = tmp_path / "exp" / "results"

    # Train and test rows never share an equation; the final task reads the test split only.
    curves = pq.read_table(results / "curves.parquet").to_pylist()
    ids = defaultdict(set)
    for row in curves:
        ids[row["task"]].add(row["example_id"])
    assert len(ids["train_acc"]) == 60 and len(ids["test_acc"]) == TEST_PAIRS
    assert not ids["train_acc"] & ids["test_acc"]
    final = pq.read_table(results / "examples.parquet").to_pylist()
    assert {r["example_id"] for r in final} == ids["test_acc"]
    assert {r["split"] for r in final} == {"test"}

    # Each run's grokking step is its test curve's first step at 0.9, else the budget, censored.
    means = defaultdict(list)
    for row in curves:
        means[(row["variant"], row["seed"], row["task"], row["step"])].append(row["correct"])
    steps = sorted({row["step"] for row in curves})
    assert steps == [5, 10, 15, 20]

    def first(variant, seed, task):
        hits = [s for s in steps if sum(v := means[(variant, seed, task, s)]) / len(v) >= 0.9]
        return hits[0] if hits else None

    measures = {m["measure"]: m for m in summary["measures"]}
    assert list(measures) == MEASURES
    for measure in measures.values():
        assert [e["variant"] for e in measure["estimates"]] == ["wd0", "wd1"]
        assert all(e["n_seeds"] + e["n_dropped"] == 2 for e in measure["estimates"])
    values = {
        label: {(v["variant"], v["seed"]): v for v in measures[label]["values"]}
        for label in ("grokking_step", "grokking_gap", "memorization_step")
    }
    for key, grok in values["grokking_step"].items():
        reached = first(*key, "test_acc")
        assert grok["censored"] == (reached is None)
        assert grok["value"] == (STEPS if reached is None else reached)
        memorized = values["memorization_step"][key]
        gap = values["grokking_gap"][key]
        if memorized["censored"]:
            assert math.isnan(gap["value"])
        else:  # the gap is the difference of the two steps, censored with the test step
            assert gap["value"] == grok["value"] - memorized["value"]
            assert gap["censored"] == grok["censored"]

    # The report plots both monitors of every run.
    report = (tmp_path / "exp" / "report.html").read_text()
    assert "Memorization and generalization monitors" in report
    assert 'alt="weight norm"' in report and 'alt="fourier top k energy"' in report

    assert [(v.get("measure") or v.get("task"), v["variant"]) for v in summary["verdicts"]] == [
        ("grokking_step", "wd1"),
        ("test_accuracy", "wd1"),
        ("final_fourier_top5", "wd1"),
    ]
    assert all(
        v["status"] in {"reproduced", "not reproduced", "inconclusive"} for v in summary["verdicts"]
    )
