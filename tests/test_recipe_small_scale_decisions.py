"""The small-scale-decisions recipe: what it states (four data recipes at equal budget, a ladder
of three sizes, a task with accuracy and continuous metrics on every person's birth date,
decision expectations), and a
shrunken version run end to end whose ``decisions`` section has its shape and invariants (tiny
runs decide nothing, so the values are only checked against their bounds)."""

from __future__ import annotations

import math

import pytest

from tiny_experiment import SHRUNKEN_RECIPE_RUN, run_quietly
from transferlab.experiment import load_experiment, plan_experiment
from transferlab.recipes import recipe_path

PATH = recipe_path("small-scale-decisions")
VARIANTS = ["fixed", "shuffled", "rephrased", "augmented"]
METRICS = ["correct", "acc_norm", "p_correct", "margin", "norm_p_correct"]
# The shrunken run's ladder: one tiny model at 2, 3 and 4 steps (sizes that differ in their
# budget alone, so the planner must key them apart), two seeds, two choices per question.
SHRUNKEN = [
    *SHRUNKEN_RECIPE_RUN,
    "base.world.num_people=16",
    "sizes={s1: {trainer.max_steps: 2}, s2: {trainer.max_steps: 3}, s3: {trainer.max_steps: 4}}",
    "tasks.0.n_choices=2",
    "seeds=[0, 1]",
]


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_every_preset_trains_four_data_recipes_at_equal_budget_on_a_growing_ladder(preset):
    spec = load_experiment(PATH, preset)
    assert spec.variant_names() == VARIANTS and spec.size_names() == ["s1", "s2", "s3"]
    assert len(spec.seeds) >= 3
    (task,) = spec.tasks
    assert {"correct", "p_correct", "margin"} <= {m.name for m in task.metrics}
    # design 2: the one attribute the target learned in its pilot, asked of both QA splits
    assert task.attributes == ["birth_date"] and sorted(task.eval_splits) == ["test", "train"]
    runs = plan_experiment(spec).runs
    assert len(runs) == len(VARIANTS) * 3 * len(spec.seeds) == len({r.key for r in runs})
    for run in runs:  # each person in five documents whatever the recipe
        assert run.config.world.rephrasings * run.config.world.exposures == 5
    ladder = [next(r.config for r in runs if r.size == size) for size in spec.size_names()]
    widths = [(c.model.d_model, c.model.n_layers) for c in ladder]
    steps = [c.trainer.max_steps for c in ladder]
    assert widths == sorted(widths) and steps == sorted(steps) and len(set(steps)) == 3
    decisions = [e.decision for e in spec.expectations]
    assert decisions == ["better", "better", "above_chance", "above_chance"]


def test_the_shrunken_recipe_decides_with_bounded_values_on_every_pair(tmp_path):
    spec = load_experiment(PATH, "quick", SHRUNKEN)
    summary = run_quietly(spec, tmp_path / "exp")
    # one question per person (16), each run scored on all of them
    assert {e["n_examples"] for e in summary["estimates"]} == {16}
    decisions = summary["decisions"]
    assert (decisions["sizes"], decisions["largest"]) == (["s1", "s2", "s3"], "s3")
    accuracy = decisions["accuracy"]
    assert [(r["size"], r["metric"]) for r in accuracy] == [
        (size, metric) for size in ("s1", "s2") for metric in METRICS
    ]
    for row in accuracy:
        assert row["n_pairs"] == math.comb(len(VARIANTS), 2) == 6
        assert (row["n_seeds"], row["n_target_seeds"], row["target_metric"]) == (2, 2, "correct")
        assert 0 <= row["low"] <= row["accuracy"] <= row["high"] <= 1
        assert row["accuracy"] * 12 == round(row["accuracy"] * 12)  # halves of sixths
    for row in decisions["differences"]:
        assert row["than"] == "correct" and -1 <= row["low"] <= row["diff"] <= row["high"] <= 1
    assert {(r["metric"], r["size"]) for r in decisions["differences"]} == {
        (m, s) for m in METRICS[1:] for s in ("s1", "s2", None)
    }
    assert len(decisions["snr"]) == 3 * len(METRICS)
    assert all(r["snr"] >= 0 or math.isnan(r["snr"]) for r in decisions["snr"])
    verdicts = summary["verdicts"]
    assert [(v["decision"], v["metric"], v["size"]) for v in verdicts] == [
        ("better", "p_correct", None),
        ("better", "margin", None),
        ("above_chance", "p_correct", "s1"),
        ("above_chance", "p_correct", "s2"),
    ]
    assert {v["status"] for v in verdicts} <= {"reproduced", "not reproduced", "inconclusive"}
