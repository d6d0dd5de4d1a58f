"""Experiment files: variants from axes, seeds, comparisons, presets, planning keys."""

from __future__ import annotations

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
