"""Experiment files: variants from axes, seeds, comparisons, presets, planning keys."""

from __future__ import annotations

import re

import pytest
import yaml

from transferlab.config import ConfigError
from transferlab.experiment import ExperimentSpec, load_experiment, plan_experiment

BASE = {
    "world": {"name": "bios", "num_people": 20},
    "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
    "trainer": {"max_steps": 4, "batch_size": 4},
}


def _spec(**fields) -> ExperimentSpec:
    data = {"name": "exp", "base": BASE, "tasks": [{"name": "qa_probe"}], **fields}
    return ExperimentSpec.model_validate(data)


def test_axes_make_a_grid_of_named_variants():
    spec = _spec(
        axes={
            "objective": {"clm": {"objective": "clm"}, "mlm": {"objective": "mlm"}},
            "size": {"narrow": {"model.d_model": 32}, "wide": {"model.d_model": 64}},
        }
    )
    assert spec.variants() == {
        "clm+narrow": {"objective": "clm", "model.d_model": 32},
        "clm+wide": {"objective": "clm", "model.d_model": 64},
        "mlm+narrow": {"objective": "mlm", "model.d_model": 32},
        "mlm+wide": {"objective": "mlm", "model.d_model": 64},
    }


def test_comparisons_against_a_baseline_or_all_pairs():
    axes = {"a": {"x": {}, "y": {}, "z": {}}}
    assert _spec(axes=axes, compare={"baseline": "x"}).comparison_pairs() == [
        ("y", "x"),
        ("z", "x"),
    ]
    assert _spec(axes=axes).comparison_pairs() == [("x", "y"), ("x", "z"), ("y", "z")]
    assert _spec(axes=axes, compare={"pairs": [["z", "y"]]}).comparison_pairs() == [("z", "y")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"axes": {"a": {"x": {}}}, "compare": {"baseline": "nope"}}, "variant 'nope'"),
        ({"seeds": [1, 1]}, "repeat a seed"),
        ({"axes": {"a": {}}}, "axes.a has no levels"),
        ({"tasks": [{"name": "qa_probe"}, {"name": "qa_probe"}]}, "give each a distinct label"),
    ],
)
def test_inconsistent_specs_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        _spec(**fields)


def test_planned_runs_are_content_addressed(tmp_path):
    axes = {"lr": {"low": {"optimizer.lr": 1e-3}, "high": {"optimizer.lr": 1e-2}}}
    spec = _spec(axes=axes, seeds=[0, 1])
    plan = plan_experiment(spec, store=tmp_path)
    again = plan_experiment(spec, store=tmp_path)
    keys = [r.key for r in plan.runs]
    assert keys == [r.key for r in again.runs]
    assert len(set(keys)) == 4  # 2 variants x 2 seeds, all different
    assert [(r.variant, r.seed) for r in plan.runs] == [
        ("low", 0),
        ("low", 1),
        ("high", 0),
        ("high", 1),
    ]
    assert all(r.run_dir == tmp_path / "runs" / r.key for r in plan.runs)
    assert all(r.status() == "todo" for r in plan.runs)
    # Seeds vary training only; the world (and so the examples) is shared.
    assert {r.config.world.seed for r in plan.runs} == {0}
    assert [r.config.seed for r in plan.runs] == [0, 1, 0, 1]
    # An experiment sharing a stage shares its key.
    other = _spec(name="other", axes={"lr": {"only": {"optimizer.lr": 1e-3}}}, seeds=[1])
    assert plan_experiment(other, store=tmp_path).runs[0].key == plan.runs[1].key
    assert len(plan.evals) == 4 and len({e.key for e in plan.evals}) == 4


def test_presets_and_overrides_apply_in_order(tmp_path):
    path = tmp_path / "exp.yaml"
    data = {
        "name": "exp",
        "base": BASE,
        "tasks": [{"name": "qa_probe"}],
        "presets": {"quick": {"seeds": [0, 1], "base.trainer.max_steps": 10}},
    }
    path.write_text(yaml.safe_dump(data))
    spec = load_experiment(path, preset="quick", overrides=["base.trainer.max_steps=12"])
    assert spec.seeds == [0, 1]
    assert spec.base["trainer"]["max_steps"] == 12
    with pytest.raises(ConfigError, match="has no preset 'full'; available presets: \\['quick'\\]"):
        load_experiment(path, preset="full")


CODE_TASKS = [{"name": "code_likelihood"}, {"name": "code_function_name"}]


def test_compare_metric_no_task_declares_is_refused_at_load_naming_what_they_declare(tmp_path):
    path = tmp_path / "exp.yaml"
    data = {"name": "exp", "base": BASE, "tasks": CODE_TASKS, "compare": {"metric": "accuracy"}}
    path.write_text(yaml.safe_dump(data))
    message = (
        "compare.metric 'accuracy' is declared by no task (the tasks declare code_likelihood: "
        "bits_per_byte; code_function_name: correct, acc_norm, p_correct, margin, "
        "norm_p_correct); set compare.metric to one of those"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_experiment(path)


@pytest.mark.parametrize(
    ("compare", "expect", "message"),
    [
        (
            {"metric": "bits_per_byte", "higher_is_better": True},
            None,
            "compare.higher_is_better=True contradicts task 'code_likelihood', which declares "
            "'bits_per_byte' lower is better; leave higher_is_better out",
        ),
        (
            {"metric": "correct"},
            {"variant": "base", "task": "code_likelihood"},
            "expect.task 'code_likelihood' does not declare compare.metric 'correct' (it "
            "declares ['bits_per_byte']); the verdict needs that comparison",
        ),
    ],
)
def test_direction_and_expectation_must_agree_with_the_declarations(compare, expect, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _spec(tasks=CODE_TASKS, compare=compare, expect=expect)


def test_the_primary_metric_and_its_direction_default_from_the_declarations():
    expect = {"variant": "base", "task": "code_likelihood"}
    assert _spec(tasks=CODE_TASKS, expect=expect).primary_metric == "bits_per_byte"
    assert _spec(tasks=CODE_TASKS).primary_metric == "bits_per_byte"  # the first task's
    assert _spec(tasks=CODE_TASKS[::-1]).primary_metric == "correct"
    consistent = {"metric": "bits_per_byte", "higher_is_better": False}
    assert _spec(tasks=CODE_TASKS, compare=consistent).primary_metric == "bits_per_byte"
    assert _spec(tasks=[]).primary_metric is None  # no task: nothing is compared
