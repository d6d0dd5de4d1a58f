"""The flatness-vs-transfer recipe: what it states (two routes of one run, a trace measured in
both, the three expectations), and a shrunken version run end to end whose summary holds both
measures per route, the task's comparison and a verdict per expectation (tiny runs decide
nothing, so the verdicts' values are not checked)."""

from __future__ import annotations

import json

import pytest

from tiny_experiment import SHRUNKEN_RECIPE_RUN, run_quietly
from transferlab.experiment import load_experiment, plan_experiment
from transferlab.recipes import recipe_path

PATH = recipe_path("flatness-vs-transfer")
ROUTES = ["saturated", "past_saturation"]
MEASURES = ["final_val_loss", "hessian_trace"]
SHRUNKEN = [
    "base.world.num_people=30",
    *SHRUNKEN_RECIPE_RUN,
    "base.trainer.callbacks=[{name: hessian_trace, probes: 2, windows: 2}]",
    "axes.route.past_saturation={trainer.max_steps: 8, trainer.checkpoint_interval: 8, "
    "trainer.callbacks: [{name: hessian_trace, probes: 2, windows: 2, at: [4]}]}",
    "seeds=[0, 1]",
]


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_the_continued_run_is_the_saturated_run_trained_longer(preset):
    spec = load_experiment(PATH, preset)
    runs = {(r.variant, r.seed): r for r in plan_experiment(spec).runs}
    for seed in spec.seeds:
        short, long = runs[("saturated", seed)], runs[("past_saturation", seed)]
        assert short.key != long.key  # two runs, not one continued under one key
        assert long.config.trainer.max_steps == 3 * short.config.trainer.max_steps
        assert short.config.schedule.name == "constant"  # the long run's prefix is the short run
        (short_trace,), (long_trace,) = (
            short.config.trainer.callbacks,
            long.config.trainer.callbacks,
        )
        assert long_trace.at == [short.config.trainer.max_steps]
        assert long_trace.model_copy(update={"at": []}) == short_trace
        same = {"name": short.config.name, "trainer": short.config.trainer}
        assert long.config.model_copy(update=same) == short.config
    assert [
        (e.measure, e.task, e.variant, e.reference, e.direction) for e in spec.expectations
    ] == [
        ("final_val_loss", None, "past_saturation", "saturated", "same"),
        ("hessian_trace", None, "past_saturation", "saturated", "better"),
        (None, "qa_probe", "past_saturation", "saturated", "better"),
    ]
    assert spec.expectations[0].margin == 0.05
    assert not {m.measure_label: m for m in spec.measures}["hessian_trace"].higher_is_better


def test_the_shrunken_recipe_measures_both_routes_and_judges_every_expectation(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = load_experiment(PATH, "quick", SHRUNKEN)
    summary = run_quietly(spec, tmp_path / "exp")

    measures = {m["measure"]: m for m in summary["measures"]}
    assert list(measures) == MEASURES
    for measure in measures.values():
        assert [e["variant"] for e in measure["estimates"]] == ROUTES
        assert all(e["n_seeds"] == 2 for e in measure["estimates"])
        pairs = {(c["variant"], c["reference"]) for c in measure["comparisons"]}
        assert pairs == {("past_saturation", "saturated")}
    assert [(v.get("measure"), v.get("task"), v["variant"], v["reference"])
            for v in summary["verdicts"]] == [
        ("final_val_loss", None, "past_saturation", "saturated"),
        ("hessian_trace", None, "past_saturation", "saturated"),
        (None, "qa_probe", "past_saturation", "saturated"),
    ]  # fmt: skip
    assert all(v["status"] in {"reproduced", "not reproduced", "inconclusive"}
               for v in summary["verdicts"])  # fmt: skip
    # The trace measure is each run's last logged trace; the continued run logged one at step 4
    # too, on the weights the saturated run ended with: the same number.
    plan = json.loads((tmp_path / "exp" / "plan.json").read_text())
    run_dirs = {(r["variant"], r["seed"]): r["run_dir"] for r in plan["runs"]}
    values = {(v["variant"], v["seed"]): v["value"] for v in measures["hessian_trace"]["values"]}
    for seed in (0, 1):
        traces = {}
        for route in ROUTES:
            with open(f"{run_dirs[(route, seed)]}/metrics.jsonl") as f:
                rows = [json.loads(line) for line in f if "hessian_trace" in line]
            traces[route] = {r["step"]: r["hessian_trace"] for r in rows if "hessian_trace" in r}
            assert values[(route, seed)] == traces[route][max(traces[route])]
        assert list(traces["past_saturation"]) == [4, 8]
        assert traces["past_saturation"][4] == traces["saturated"][4]
