"""An experiment with measures and no tasks, end to end: train only, measure the runs, compare,
verdicts, report; from the Python API and then the CLI (which reuses the trained runs)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from tiny_experiment import tiny_base
from transferlab.cli import app
from transferlab.experiment import ExperimentSpec, plan_experiment, run_experiment
from transferlab.report.markup import esc
from transferlab.train.checkpoint import read_run_config

SPEC = {
    "name": "measures",
    "base": tiny_base(3),
    "axes": {
        "width": {"narrow": {}, "wide": {"model.d_model": 48}},
        "lr": {"lo": {"optimizer.lr": 1e-3}, "hi": {"optimizer.lr": 1e-2}},
    },
    "seeds": [0, 1],
    "tasks": [],
    "measures": [
        {"name": "lr_sensitivity", "over": "lr"},
        {"name": "final_val_loss", "over": "lr", "pick": "best", "label": "best_loss"},
        {"name": "steps_to_loss", "target": 0.5},  # out of reach in 3 steps: censored
        {"name": "run_field", "field": "params_total", "higher_is_better": False},
    ],
    "expect": [
        {"measure": "lr_sensitivity", "variant": "wide", "reference": "narrow", "claim": "c1"},
        {"measure": "best_loss", "variant": "wide", "direction": "better"},
    ],
}


def test_measures_without_tasks_from_the_api_and_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = ExperimentSpec.model_validate(SPEC)
    result = run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert summary["estimates"] == summary["comparisons"] == []
    assert [m["measure"] for m in summary["measures"]] == [
        "lr_sensitivity",
        "best_loss",
        "steps_to_loss",
        "run_field",
    ]
    sensitivity, best, steps, params = summary["measures"]

    # lr_sensitivity from the runs table by hand: L0 = ln(vocab), L* = the sweep's best.
    runs = pq.read_table(tmp_path / "exp" / "results" / "runs.parquet").to_pylist()
    loss = {(r["variant"], r["seed"]): r["final_val_loss"] for r in runs}
    vocab = read_run_config(plan_experiment(spec).runs[0].run_dir).model.vocab_size
    for value in sensitivity["values"]:
        clipped = [min(loss[(f"{value['variant']}+{lr}", value["seed"])], math.log(vocab))
                   for lr in ("lo", "hi")]  # fmt: skip
        assert value["value"] == pytest.approx(np.mean(clipped) - min(clipped), abs=1e-12)
    (comparison,) = sensitivity["comparisons"]
    assert (comparison["variant"], comparison["reference"], comparison["n_seeds"]) == (
        "narrow",
        "wide",
        2,
    )

    # pick: best, per width, the lr with the lower mean final loss over the two seeds
    for width in ("narrow", "wide"):
        means = {lr: np.mean([loss[(f"{width}+{lr}", s)] for s in (0, 1)]) for lr in ("lo", "hi")}
        picked = min(means, key=means.get)
        assert best["picks"][width]["level"] == picked
        assert {(v["seed"], v["value"]) for v in best["values"] if v["variant"] == width} == {
            (s, loss[(f"{width}+{picked}", s)]) for s in (0, 1)
        }
    assert {(v["value"], v["censored"]) for v in steps["values"]} == {(3.0, True)}
    assert all(e["n_censored"] == 2 for e in steps["estimates"])
    assert {(v["variant"], v["value"]) for v in params["values"]} == {
        (r["variant"], r["params_total"]) for r in runs
    }

    assert [v["measure"] for v in summary["verdicts"]] == ["lr_sensitivity", "best_loss"]
    assert [v["claim"] for v in summary["verdicts"]] == ["c1", ""]
    assert summary["verdict"] == summary["verdicts"][0]
    assert result.verdicts == [v["text"] for v in summary["verdicts"]]
    assert all(v["status"] in {"reproduced", "not reproduced", "inconclusive"}
               for v in summary["verdicts"])  # fmt: skip
    page = result.report.read_text()
    assert "<h2>Measures of the training runs</h2>" in page
    assert all(esc(v["text"]) in page for v in summary["verdicts"])
    assert "claim: c1" in page

    # The CLI on the same file reuses every run and prints the measures and both verdicts.
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))  # axis order names the variants
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "cli")])
    assert ran.exit_code == 0, ran.output
    again = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert again["measures"] == summary["measures"]
    plan = json.loads((tmp_path / "cli" / "plan.json").read_text())
    assert {r["status"] for r in plan["runs"]} == {"done"}
    shown = runner.invoke(app, ["results", str(tmp_path / "cli")], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())  # rich wraps long lines at spaces
    first, second = (v["text"] for v in summary["verdicts"])
    assert flat.endswith(f"verdict 1/2: {first} verdict 2/2: {second}")
    assert "lr_sensitivity (lower is better; over lr, sweep; stage pretrain)" in flat
    assert "2 censored (counted at their budget)" in flat
