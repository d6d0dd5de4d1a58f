"""Sizes as an axis: every variant at every size of the ladder, run keys that keep budgets
apart, and the refusals of an ill-formed ladder."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from rich.console import Console

from tiny_experiment import run_quietly, tiny_base
from transferlab.config import ConfigError
from transferlab.experiment import ExperimentSpec, load_experiment, load_results, plan_experiment
from transferlab.experiment.decision_analysis import final_checkpoints
from transferlab.experiment.reseed import expectation_subject
from transferlab.experiment.verdicts import expectation_verdicts
from transferlab.report.terminal import print_summary
from transferlab.train import read_metrics

BASE = {
    "world": {"name": "bios", "num_people": 20},
    "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
    "trainer": {"max_steps": 4, "batch_size": 4},
}
AXES = {"lr": {"low": {"optimizer.lr": 1e-3}, "high": {"optimizer.lr": 1e-2}}}
LADDER = {"s1": {"model.d_model": 32}, "s2": {"model.d_model": 64, "trainer.max_steps": 8}}


def _spec(**fields) -> ExperimentSpec:
    data = {"name": "exp", "base": BASE, "tasks": [{"name": "qa_probe"}], **fields}
    return ExperimentSpec.model_validate(data)


def test_every_variant_is_planned_at_every_size_and_seed_sizes_outermost(tmp_path):
    plan = plan_experiment(_spec(axes=AXES, seeds=[0, 1], sizes=LADDER), store=tmp_path)
    assert [(r.size, r.variant, r.seed) for r in plan.runs] == [
        (size, variant, seed)
        for size in ("s1", "s2")
        for variant in ("low", "high")
        for seed in (0, 1)
    ]
    assert len({r.key for r in plan.runs}) == 8
    s2 = [r for r in plan.runs if r.size == "s2"]
    assert {(r.config.model.d_model, r.config.trainer.max_steps) for r in s2} == {(64, 8)}
    assert {r.config.optimizer.lr for r in s2} == {1e-3, 1e-2}
    assert [e.run.size for e in plan.evals] == [r.size for r in plan.runs]


def test_a_spec_without_sizes_plans_one_unnamed_size_with_the_keys_it_had(tmp_path):
    spec = _spec(axes=AXES)
    plan = plan_experiment(spec, store=tmp_path)
    assert {r.size for r in plan.runs} == {None}
    assert "sizes" not in spec.to_dict()  # its dict, and so its spec key, as before sizes
    assert "sizes" in _spec(axes=AXES, sizes=LADDER).to_dict()
    # The smallest size of a ladder that changes nothing is the plain spec's run.
    sized = _spec(axes=AXES, sizes={"s1": {}, "s2": {"model.d_model": 64}})
    sized_plan = plan_experiment(sized, store=tmp_path)
    assert [r.key for r in sized_plan.runs[:2]] == [r.key for r in plan.runs]


def test_runs_that_differ_only_in_max_steps_get_distinct_keys_in_and_across_specs(tmp_path):
    budgets = {"steps": {"short": {"trainer.max_steps": 4}, "long": {"trainer.max_steps": 8}}}
    short, long = plan_experiment(_spec(axes=budgets), store=tmp_path).runs
    assert short.key != long.key
    assert (short.config.trainer.max_steps, long.config.trainer.max_steps) == (4, 8)
    # Two experiments that share a cache: the budget is in the key, so the shorter one never
    # reads (nor the longer one continues) a run trained to the other's steps.
    alone = [
        plan_experiment(
            _spec(base={**BASE, "trainer": {**BASE["trainer"], "max_steps": n}}), store=tmp_path
        ).runs[0]
        for n in (4, 8)
    ]
    assert [run.key for run in alone] == [short.key, long.key]
    # A ladder over the budget alone gives the same runs.
    ladder = {"s1": {"trainer.max_steps": 4}, "s2": {"trainer.max_steps": 8}}
    assert [r.key for r in plan_experiment(_spec(sizes=ladder), store=tmp_path).runs] == [
        short.key,
        long.key,
    ]


def test_two_budgets_of_one_config_are_trained_each_to_its_own_steps(tmp_path):
    spec = ExperimentSpec.model_validate(
        {
            "name": "budgets",
            "base": tiny_base(2),
            "sizes": {"s1": {"trainer.max_steps": 2}, "s2": {"trainer.max_steps": 4}},
            "tasks": [{"name": "qa_score", "n_choices": 4}],
        }
    )
    run_quietly(spec, tmp_path / "exp")
    runs = load_results(tmp_path / "exp").runs.to_pylist()
    assert [(r["size"], r["steps"]) for r in runs] == [("s1", 2), ("s2", 4)]
    for run in plan_experiment(spec).runs:
        assert (
            read_metrics(run.run_dir / "metrics.jsonl")[-1]["step"] == run.config.trainer.max_steps
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sizes": {"only": {}}}, "a ladder needs at least 2"),
        ({"sizes": {"s 1": {}, "s2": {}}}, "size name 's 1' must be a word"),
        (
            {
                "axes": {"m": {"a": {"model.d_model": 32}}},
                "sizes": {"s1": {"model.d_model": 8}, "s2": {}},
            },
            "size 's1' and variant 'a' both set \\['model.d_model'\\]",
        ),
        (
            {"sizes": LADDER, "measures": [{"name": "final_val_loss"}]},
            "measures are not computed per size",
        ),
        ({"expect": {"decision": "above_chance"}}, "add sizes"),
        (
            {"sizes": LADDER, "expect": {"decision": "above_chance", "size": "s2"}},
            "size 's2' is not a size smaller than the largest",
        ),
        (
            {"sizes": LADDER, "expect": {"decision": "better", "metric": "correct"}},
            "give metric .* and than",
        ),
        (
            {"sizes": LADDER, "expect": {"decision": "better", "metric": "nope", "than": "x"}},
            "does not declare metric 'nope'",
        ),
        ({"expect": {"decision": "better", "variant": "base"}}, "exactly one of them"),
        ({"expect": {"variant": "base", "size": "s1"}}, "than and size belong to a decision"),
    ],
)
def test_ill_formed_ladders_and_decisions_are_refused_naming_the_fix(fields, message):
    with pytest.raises(ValueError, match=message):
        _spec(**fields)


def _ladder_spec(expect=None, **fields) -> ExperimentSpec:
    """Three learning rates at two sizes (4 and 8 steps), 2 seeds, few-shot QA scoring."""
    lrs = {
        "lr": {name: {"optimizer.lr": lr} for name, lr in [("a", 1e-4), ("b", 3e-3), ("c", 3e-2)]}
    }
    return ExperimentSpec.model_validate(
        {
            "name": "ladder",
            "base": tiny_base(4),
            "axes": lrs,
            "seeds": [0, 1],
            "sizes": {"s1": {"trainer.max_steps": 4}, "s2": {"trainer.max_steps": 8}},
            "tasks": [{"name": "qa_score", "n_choices": 4}],
            "compare": {"baseline": "a"},
            "expect": expect,
            **fields,
        }
    )


def test_a_ladder_is_compared_within_sizes_and_decided_against_the_largest(tmp_path):
    expect = [
        {"variant": "c", "direction": "better"},
        {"decision": "better", "metric": "p_correct", "than": "correct"},
        {"decision": "above_chance", "metric": "margin"},
    ]
    summary = run_quietly(_ladder_spec(expect, curves={"every": 2}), tmp_path / "exp")
    comparisons = [c for c in summary["comparisons"] if c["metric"] == "correct"]
    assert [(c["size"], c["variant"], c["reference"]) for c in comparisons] == [
        ("s1", "b", "a"),
        ("s1", "c", "a"),
        ("s2", "b", "a"),
        ("s2", "c", "a"),
    ]
    assert {c["n_seeds"] for c in comparisons} == {2}  # within a size: its 2 seeds, not 4
    decisions = summary["decisions"]
    assert (decisions["sizes"], decisions["largest"], decisions["chance"]) == (
        ["s1", "s2"],
        "s2",
        0.5,
    )
    accuracy = decisions["accuracy"]
    declared = ["correct", "acc_norm", "p_correct", "margin", "norm_p_correct"]
    assert [(r["size"], r["metric"]) for r in accuracy] == [("s1", m) for m in declared]
    for row in accuracy:
        assert (row["n_variants"], row["n_pairs"], row["n_seeds"], row["target_metric"]) == (
            3,
            3,
            2,
            "correct",
        )
        assert 0 <= row["low"] <= row["accuracy"] <= row["high"] <= 1
        assert row["accuracy"] * 6 == round(row["accuracy"] * 6)  # halves of thirds: 3 pairs
    assert {(r["metric"], r["size"]) for r in decisions["differences"]} == {
        (m, s) for m in declared[1:] for s in ("s1", None)
    }
    assert {(r["size"], r["metric"]) for r in decisions["snr"]} == {
        (s, m) for s in ("s1", "s2") for m in declared
    }
    # Transfer curves at steps 2 and 4 (s1) and 2-8 (s2): noise over the final checkpoints too.
    assert all(
        math.isfinite(r["checkpoint_noise"]) for r in decisions["snr"] if r["metric"] == "p_correct"
    )
    task, better, chance = summary["verdicts"]
    assert "s1" not in task["text"] and task["n_seeds"] == 2  # judged at the largest size
    found = next(
        r for r in decisions["differences"] if (r["metric"], r["size"]) == ("p_correct", None)
    )
    assert (better["estimate"], better["low"], better["high"]) == (
        found["diff"],
        found["low"],
        found["high"],
    )
    expected = (
        "reproduced"
        if found["low"] > 0
        else "not reproduced"
        if found["high"] < 0
        else "inconclusive"
    )
    assert better["status"] == expected
    assert chance["size"] == "s1" and "n = 3 variants (3 pairs) x 2 seeds" in chance["text"]
    report = (tmp_path / "exp" / "report.html").read_text()
    assert "Decisions across sizes" in report and "b vs a @ s1" in report
    # Training curves: one band per variant and size, never the sizes' runs pooled.
    assert "Seeds per variant: a @ s1: 2; b @ s1: 2; c @ s1: 2; a @ s2: 2" in report
    assert "<th>group</th><th>a @ s1</th><th>b @ s1</th>" in report  # per-group columns too
    console = Console(record=True, width=200)
    print_summary(tmp_path / "exp", console)
    printed = console.export_text()
    assert "decision accuracy against the order at s2 by correct" in printed
    assert "b vs a @ s1" in printed and "c @ s2" in printed


def _decisions(diff: tuple[float, float, float], accuracy: tuple[float, float, float]) -> dict:
    n = {"n_variants": 3, "n_pairs": 3, "n_seeds": 2, "n_target_seeds": 2}
    common = {"task": "qa_score", "target_metric": "correct", "level": 0.95, "resamples": 10}
    return {
        "chance": 0.5,
        "accuracy": [
            {
                **common,
                **n,
                "metric": "margin",
                "size": "s1",
                **dict(zip(("accuracy", "low", "high"), accuracy, strict=True)),
            }
        ],
        "differences": [
            {
                **common,
                "metric": "p_correct",
                "than": "correct",
                "size": None,
                **dict(zip(("diff", "low", "high"), diff, strict=True)),
            }
        ],
    }


@pytest.mark.parametrize(
    ("diff", "accuracy", "statuses"),
    [
        ((0.3, 0.1, 0.5), (0.9, 0.6, 1.0), ["reproduced", "reproduced"]),
        ((-0.3, -0.5, -0.1), (0.2, 0.0, 0.4), ["not reproduced", "not reproduced"]),
        ((0.1, -0.1, 0.3), (0.7, 0.5, 1.0), ["inconclusive", "inconclusive"]),
    ],
)
def test_decision_verdicts_read_the_interval_against_0_and_chance(diff, accuracy, statuses):
    spec = _ladder_spec(
        [
            {"decision": "better", "metric": "p_correct", "than": "correct"},
            {"decision": "above_chance", "metric": "margin"},
        ]
    )
    verdicts = expectation_verdicts(spec, [], [], [], _decisions(diff, accuracy))
    assert [v["status"] for v in verdicts] == statuses
    assert [v["estimate"] for v in verdicts] == [diff[0], accuracy[0]]
    assert [expectation_subject(v) for v in verdicts] == [
        "decision by p_correct vs correct (mean over smaller sizes) on qa_score",
        "decision by margin at s1 vs chance on qa_score",
    ]
    # The effect, as the scoreboard shows it: the distance from 0 and from chance.
    assert verdicts[1]["diff"] == pytest.approx(accuracy[0] - 0.5)
    assert (verdicts[1]["low"], verdicts[1]["high"]) == pytest.approx(
        (accuracy[1] - 0.5, accuracy[2] - 0.5)
    )


def test_checkpoint_noise_reads_each_runs_last_evaluated_steps():
    spec = _ladder_spec()
    (task,) = spec.tasks
    rows = [
        {"size": "s2", "variant": v, "seed": seed, "step": step, "task": "qa_score", "correct": x}
        for v, seed, points in [("a", 0, [0.0, 0.1, 0.2, 0.4]), ("b", 0, [0.5, 0.5, 0.7, 0.9])]
        for step, x in zip((2, 4, 6, 8), points, strict=True)
    ]
    found = final_checkpoints(pa.Table.from_pylist(rows), task)
    assert list(found) == [("s2", "correct")]  # the only metric the rows hold
    # The last three steps of each run, in step order, whatever the row order.
    assert found[("s2", "correct")].tolist() == [[0.1, 0.2, 0.4], [0.5, 0.7, 0.9]]
    assert final_checkpoints(pa.Table.from_pylist(rows[:2] + rows[4:5]), task) == {}


def test_a_size_written_twice_is_refused_at_load_naming_the_line(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: exp\ntasks: [{name: qa_probe}]\nsizes:\n  s1: {model.d_model: 32}\n"
        "  s1: {model.d_model: 64}\n"
    )
    with pytest.raises(ConfigError, match="line 5, column 3: key 's1' appears twice"):
        load_experiment(path)
