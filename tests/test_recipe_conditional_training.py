"""The conditional-training recipe: what it states (variants, the scorer judging training text
and samples alike, the expectations), and a shrunken version run end to end whose summary holds
the measures and a verdict per expectation (tiny runs decide nothing, so the verdicts' values
are not checked)."""

from __future__ import annotations

from tiny_experiment import SHRUNKEN_RECIPE_RUN, run_quietly
from transferlab.experiment import load_experiment, plan_experiment
from transferlab.recipes import recipe_path

PATH = recipe_path("conditional-training")
VARIANTS = ["plain", "filtered", "conditional"]
# A one-layer model, 4 steps, 2 seeds, 4 short samples per run, a 12-person world.
SHRUNKEN = [
    "base.world.num_people=12",
    *SHRUNKEN_RECIPE_RUN,
    "tasks.0.n_samples=4",
    "tasks.0.max_new_tokens=8",
    "seeds=[0, 1]",
]


def test_the_variants_differ_only_in_their_documents_or_their_objective():
    spec = load_experiment(PATH, "quick")
    runs = {run.variant: run.config for run in plan_experiment(spec).runs if run.seed == 0}
    plain, filtered, conditional = (runs[name] for name in VARIANTS)
    assert plain.world.pii_fraction == 0.25 and filtered.world.pii_filter
    assert filtered.model_copy(update={"world": plain.world, "name": plain.name}) == plain
    assert conditional.objective.name == "conditional"
    assert conditional.objective.scorer.name == "pii" and conditional.objective.threshold == 0
    assert conditional.objective.generation_prefix() == ("<|good|>",)
    same = {"objective": plain.objective, "name": plain.name}
    assert conditional.model_copy(update=same) == plain
    samples = spec.task("pii_samples")
    assert samples.objective_prefix and samples.scorer == conditional.objective.scorer
    assert (samples.temperature, samples.prompts) == (1.0, "bos")
    assert [(e.variant, e.reference, e.direction, e.margin) for e in spec.expectations] == [
        ("conditional", "plain", "better", None),
        ("filtered", "plain", "better", None),
        ("conditional", "plain", "not_worse", 0.05),
        ("conditional", "plain", "not_worse", 0.05),
        ("plain", None, "better", None),
    ]


def test_the_shrunken_recipe_measures_every_variant_and_judges_every_expectation(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = load_experiment(PATH, "quick", SHRUNKEN)
    summary = run_quietly(spec, tmp_path / "exp")

    (measure,) = summary["measures"]
    assert measure["measure"] == "final_val_loss"
    assert [e["variant"] for e in measure["estimates"]] == VARIANTS
    rates = [c for c in summary["comparisons"] if c["metric"] == "undesirable"]
    assert {(c["variant"], c["reference"]) for c in rates} == {
        ("plain", "filtered"),
        ("plain", "conditional"),
        ("filtered", "conditional"),
    }
    assert all(c["n_examples"] == 4 and c["n_seeds"] == 2 for c in rates)
    verdicts = summary["verdicts"]
    assert [(v.get("task") or v.get("measure"), v.get("metric")) for v in verdicts] == [
        ("pii_samples", "undesirable"),
        ("pii_samples", "undesirable"),
        ("final_val_loss", None),
        ("qa_score", "correct"),
        ("qa_score", "correct"),
    ]
    assert all(v["status"] in {"reproduced", "not reproduced", "inconclusive"} for v in verdicts)
