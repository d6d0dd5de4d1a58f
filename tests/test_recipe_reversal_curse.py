"""The reversal-curse recipe: what it states (name-first biographies, the objectives, the tasks of
both directions, the expectations), and a shrunken version run end to end whose summary holds a
comparison per direction and a verdict per expectation on the variants it names (tiny runs
decide nothing, so the verdicts' values are not checked)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tiny_experiment import run_quietly
from transferlab.experiment import load_experiment, plan_experiment
from transferlab.recipes import recipe_path

PATH = recipe_path("reversal-curse")
TASKS_ = ["forward_mc", "reverse_mc", "forward_ft", "reverse_ft"]
VARIANTS = ["clm", "reverse", "permutation"]
# A few steps of a one-layer model on 24 people (the fewest whose corpus shows every phrase a
# reverse question uses), two seeds, two fine-tuning steps: every task and expectation.
SHRUNKEN = [
    "base.world.num_people=24",
    "base.data.seq_len=32",
    "base.data.val_fraction=0.1",
    "base.model={d_model: 32, n_layers: 1, n_heads: 2}",
    "base.schedule.warmup_steps=1",
    "base.trainer.max_steps=3",
    "base.trainer.batch_size=4",
    "base.trainer.eval_interval=3",
    "base.trainer.eval_batches=1",
    "base.trainer.checkpoint_interval=3",
    "base.trainer.progress=false",
    "tasks.0={name: qa_score, label: forward_mc, n_choices: 2, eval_splits: [test]}",
    "tasks.1={name: qa_reverse_score, label: reverse_mc, n_choices: 2, eval_splits: [test]}",
    "tasks.2.steps=2",
    "tasks.2.max_new_tokens=3",
    "tasks.3.steps=2",
    "tasks.3.max_new_tokens=3",
    "seeds=[0, 1]",
]


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_every_preset_trains_name_first_biographies_and_reads_both_directions(preset):
    spec = load_experiment(PATH, preset)
    assert list(spec.axes["objective"]) == VARIANTS
    assert [t.task_name for t in spec.tasks] == TASKS_
    forward_ft, reverse_ft = spec.tasks[2:]
    assert (forward_ft.direction, reverse_ft.direction) == ("forward", "reverse")
    assert forward_ft.train_directions == reverse_ft.train_directions == ["forward", "reverse"]
    assert forward_ft.model_copy(update={"label": None, "direction": "reverse"}) == (
        reverse_ft.model_copy(update={"label": None})
    )  # the two fine-tune alike
    runs = plan_experiment(spec).runs
    assert len(runs) == len(VARIANTS) * 3
    for run in runs:
        world = run.config.world
        assert (world.full_name, world.shuffle_sentences, world.rephrasings) == (False, True, 5)
    by_variant = {run.variant: run.config.objective for run in runs}
    assert by_variant["reverse"].name == "reverse" and by_variant["reverse"].unit == "entity"
    permutation = by_variant["permutation"]
    assert (permutation.name, permutation.order, permutation.permute_fraction) == (
        "permutation",
        "random",
        by_variant["reverse"].reverse_fraction,
    )
    expected = [
        (e.task, e.variant, e.reference, e.value, e.direction, e.margin) for e in spec.expectations
    ]
    assert expected == [
        ("reverse_mc", "clm", None, 0.125, "same", 0.05),
        ("forward_mc", "clm", None, 0.125, "better", None),
        ("reverse_mc", "reverse", "clm", None, "better", None),
        ("reverse_mc", "permutation", "clm", None, "better", None),
        ("forward_mc", "reverse", "clm", None, "not_worse", 0.05),
        ("forward_mc", "permutation", "clm", None, "not_worse", 0.05),
        ("reverse_ft", "clm", None, 0.0, "same", 0.05),
        ("forward_ft", "clm", None, 0.0, "better", None),
        ("reverse_ft", "reverse", "clm", None, "better", None),
        ("reverse_ft", "permutation", "clm", None, "better", None),
        ("forward_ft", "reverse", "clm", None, "not_worse", 0.05),
        ("forward_ft", "permutation", "clm", None, "not_worse", 0.05),
    ]
    # chance of multiple choice among n_choices
    assert {1 / t.n_choices for t in spec.tasks[:2]} == {0.125}


def test_the_shrunken_recipe_compares_each_direction_and_judges_every_expectation(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = load_experiment(PATH, "quick", SHRUNKEN)
    summary = run_quietly(spec, tmp_path / "exp")

    compared = {(c["task"], c["variant"], c["reference"]) for c in summary["comparisons"]}
    for task in TASKS_:
        assert {(task, "reverse", "clm"), (task, "permutation", "clm")} <= compared
    estimates = {
        (e["task"], e["variant"]) for e in summary["estimates"] if e["metric"] == "correct"
    }
    assert estimates == {(t, v) for t in TASKS_ for v in VARIANTS}

    verdicts = summary["verdicts"]
    assert [
        (v.get("task"), v["variant"], v.get("reference"), v.get("value")) for v in verdicts
    ] == [(e.task, e.variant, e.reference, e.value) for e in spec.expectations]
    assert all(v["status"] in {"reproduced", "not reproduced", "inconclusive"} for v in verdicts)
    assert all(v["claim"] for v in verdicts)

    # A fact's forward and reverse rows share their example id, run by run.
    rows = pq.read_table(tmp_path / "exp" / "results" / "examples.parquet").to_pylist()
    ids = {}
    for row in rows:
        ids.setdefault((row["task"], row["run_id"]), set()).add(row["example_id"])
    run_id = rows[0]["run_id"]
    assert ids["forward_mc", run_id] == ids["reverse_mc", run_id]
    assert ids["forward_ft", run_id] == ids["reverse_ft", run_id]
