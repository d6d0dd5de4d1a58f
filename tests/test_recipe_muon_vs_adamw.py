"""The muon-vs-adamw recipe: what it states (targets fixed in the file, the share of Muon's
parameters, the constraint), and a shrunken version run end to end whose summary holds every
measure per optimizer and a verdict per expectation (tiny runs decide nothing, so the verdicts'
values are not checked)."""

from __future__ import annotations

import json

import pytest

from tiny_experiment import run_quietly
from transferlab.config import validate
from transferlab.config.schemas import ModelConfig
from transferlab.experiment import load_experiment, plan_experiment
from transferlab.models.transformer import build_model
from transferlab.optim.groups import param_groups
from transferlab.recipes import recipe_path
from transferlab.train.metrics import read_metrics

PATH = recipe_path("muon-vs-adamw")
OPTIMIZERS = ["adamw", "muon", "muon_lipschitz"]
MEASURES = ["steps_to_target", "seconds_to_target", "best_final_val_loss"]
# A few steps of a one-layer model on one small package of the library, two lr levels, two
# seeds: every optimizer, measure and expectation of the recipe, in seconds.
SHRUNKEN = [
    "base.data.sources.0.modules=[json]",
    "base.data.val_fraction=0.2",
    "base.data.seq_len=32",
    "base.tokenizer.vocab_size=300",
    "base.model={d_model: 32, n_layers: 1, n_heads: 2}",
    "base.schedule.warmup_steps=1",
    "base.trainer.max_steps=4",
    "base.trainer.batch_size=4",
    "base.trainer.eval_interval=2",
    "base.trainer.checkpoint_interval=4",
    "base.trainer.progress=false",
    "axes.lr={lr3e-3: {optimizer.lr: 3.0e-3}, lr3e-2: {optimizer.lr: 3.0e-2}}",
    "seeds=[0, 1]",
]


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_every_preset_fixes_one_target_and_judges_muon_then_its_constrained_variant(preset):
    spec = load_experiment(PATH, preset)
    by_label = {m.measure_label: m for m in spec.measures}
    assert list(by_label) == MEASURES
    steps, seconds, final = by_label.values()
    # One target, in steps and in seconds: each preset's pilot's, as the file records it.
    assert steps.target == seconds.target == {"quick": 6.15, "full": 4.20}[preset]
    assert all(m.over == "lr" and m.pick == "best" for m in by_label.values())
    assert [(e.measure, e.variant, e.reference, e.direction) for e in spec.expectations] == [
        ("steps_to_target", "muon", "adamw", "better"),
        ("steps_to_target", "muon_lipschitz", "muon", "worse"),
    ]
    assert spec.tasks == [] and 100 not in spec.seeds  # seed 100 is the pilot's
    assert set(spec.measure_variants(steps)) == set(OPTIMIZERS)
    # Each optimizer's runs: the constrained one is muon plus the cap, the others train plain.
    runs = {run.variant: run.config for run in plan_experiment(spec).runs}
    for lr in spec.axes["lr"]:
        adamw, muon, capped = (runs[f"{name}+{lr}"] for name in OPTIMIZERS)
        assert (adamw.optimizer.name, muon.optimizer.name, capped.optimizer.name) == (
            "adamw",
            "muon",
            "muon",
        )
        assert adamw.trainer.callbacks == muon.trainer.callbacks == []
        (cap,) = capped.trainer.callbacks
        assert (cap.name, cap.method, cap.max_norm, cap.head) == (
            "lipschitz",
            "spectral_cap",
            1.0,
            False,
        )
        same = {"name": muon.name, "trainer": muon.trainer}  # name: the run's key
        assert capped.model_copy(update=same) == muon


def test_most_of_the_quick_models_parameters_are_the_hidden_matrices_muon_updates():
    spec = load_experiment(PATH, "quick")
    config = plan_experiment(spec).runs[0].config
    vocab = config.tokenizer.vocab_size
    model = build_model(validate(ModelConfig, {**config.model.to_dict(), "vocab_size": vocab}))
    groups = param_groups(model, config.optimizer, separate_hidden=True)
    hidden = sum(p.numel() for g in groups if g.hidden for p in g.params)
    total = sum(p.numel() for p in model.parameters())
    assert (hidden, total) == (442_368, 639_840)  # the figures the recipe's comments give


def test_the_shrunken_recipe_measures_every_optimizer_and_judges_both_expectations(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = load_experiment(PATH, "quick", SHRUNKEN)
    summary = run_quietly(spec, tmp_path / "exp")

    measures = {m["measure"]: m for m in summary["measures"]}
    assert list(measures) == MEASURES
    for measure in measures.values():
        assert [e["variant"] for e in measure["estimates"]] == OPTIMIZERS
        assert all(e["n_seeds"] == 2 for e in measure["estimates"])
        assert set(measure["picks"]) == set(OPTIMIZERS)
        assert all(p["level"] in ("lr3e-3", "lr3e-2") for p in measure["picks"].values())
        pairs = {(c["variant"], c["reference"]) for c in measure["comparisons"]}
        assert pairs == {("adamw", "muon"), ("adamw", "muon_lipschitz"), ("muon", "muon_lipschitz")}
    assert [(v["measure"], v["variant"], v["reference"]) for v in summary["verdicts"]] == [
        ("steps_to_target", "muon", "adamw"),
        ("steps_to_target", "muon_lipschitz", "muon"),
    ]
    assert all(v["status"] in {"reproduced", "not reproduced", "inconclusive"}
               for v in summary["verdicts"])  # fmt: skip

    # The values are those of the picked level's runs, read from their own logs.
    target = spec.measures[0].target
    plan = json.loads((tmp_path / "exp" / "plan.json").read_text())
    run_dirs = {(r["variant"], r["seed"]): r["run_dir"] for r in plan["runs"]}
    steps = {(v["variant"], v["seed"]): v["value"] for v in measures["steps_to_target"]["values"]}
    for (optimizer, seed), value in steps.items():
        picked = measures["steps_to_target"]["picks"][optimizer]["variant"]
        rows = read_metrics(f"{run_dirs[(picked, seed)]}/metrics.jsonl")
        reached = [r["step"] for r in rows if r.get("val_loss", float("inf")) <= target]
        assert value == (reached[0] if reached else 4)
