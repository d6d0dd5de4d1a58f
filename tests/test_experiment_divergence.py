"""An lr sweep whose highest learning rate diverges, with trainer.on_divergence: stop: the
experiment reaches its analysis, a diverged run counts as L0 in lr_sensitivity, it is reused on
a rerun, and specs that would read a diverged run's final model are refused at planning."""

from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest

from tiny_experiment import tiny_base
from transferlab.config import ConfigError, set_dotted
from transferlab.experiment import ExperimentSpec, plan_experiment, run_experiment
from transferlab.experiment.executor import pending_jobs
from transferlab.train.checkpoint import read_run_config

BASE = set_dotted(
    tiny_base(4, every=2),
    {"trainer.on_divergence": "stop", "trainer.callbacks": [{"name": "stability", "every": 4}]},
)
SPEC = {
    "name": "diverging-sweep",
    "base": BASE,
    "axes": {"lr": {"lo": {"optimizer.lr": 1e-3}, "hi": {"optimizer.lr": 1e6}}},
    "seeds": [0, 1],
    "tasks": [],
    "measures": [
        {"name": "lr_sensitivity", "over": "lr"},
        {"name": "final_val_loss"},
        {"name": "steps_to_loss", "target": 0.5},
        {"name": "metric", "field": "attn_logit_max", "reduce": "max", "higher_is_better": False},
    ],
}


def test_a_diverged_run_is_a_finished_result_of_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = ExperimentSpec.model_validate(SPEC)
    run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    runs = {
        (r["variant"], r["seed"]): r
        for r in pq.read_table(tmp_path / "exp" / "results" / "runs.parquet").to_pylist()
    }
    for seed in (0, 1):
        lo, hi = runs[("lo", seed)], runs[("hi", seed)]
        assert (lo["diverged"], lo["diverged_step"], lo["steps"]) == (False, None, 4)
        assert (hi["diverged"], hi["diverged_step"], hi["steps"]) == (True, 3, 3)
        assert math.isfinite(lo["final_val_loss"]) and math.isnan(hi["final_val_loss"])

    sensitivity, final, steps, logits = summary["measures"]
    # Per seed: the diverged hi counts as L0 = ln(V); L* = min(L_lo, L0) (lo trains).
    vocab = read_run_config(plan_experiment(spec).runs[0].run_dir).model.vocab_size
    l0 = math.log(vocab)
    for value in sensitivity["values"]:
        best = min(runs[("lo", value["seed"])]["final_val_loss"], l0)
        assert value["value"] == pytest.approx((best + l0) / 2 - best, abs=1e-12)
    assert {v["variant"] for v in sensitivity["values"]} == {"all"}
    # final_val_loss: the diverged runs' NaN is missing, counted as dropped.
    estimates = {e["variant"]: e for e in final["estimates"]}
    assert (estimates["hi"]["n_seeds"], estimates["hi"]["n_dropped"]) == (0, 2)
    assert (estimates["lo"]["n_seeds"], estimates["lo"]["n_dropped"]) == (2, 0)
    # steps_to_loss: never reached, so censored at max_steps, diverged or not.
    assert {(v["value"], v["censored"]) for v in steps["values"]} == {(4.0, True)}
    # attn_logit_max is logged at step 4, after hi diverged (step 3): hi has no value (NaN).
    hi_logits = [v["value"] for v in logits["values"] if v["variant"] == "hi"]
    assert len(hi_logits) == 2 and all(math.isnan(v) for v in hi_logits)
    assert all(math.isfinite(v["value"]) for v in logits["values"] if v["variant"] == "lo")

    # A rerun reuses every run, the diverged ones included, and gives the same summary.
    plan = plan_experiment(spec)
    assert {run.status() for run in plan.runs} == {"done"}
    assert pending_jobs(plan) == []
    said = []
    run_experiment(spec, tmp_path / "again", log=said.append)
    assert said == ["every stage is finished; nothing to run"]
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["measures"][0]["values"] == sensitivity["values"]
    page = (tmp_path / "exp" / "report.html").read_text()
    assert page.count("diverged at step 3") == 2  # the runs table's status of each hi run


@pytest.mark.parametrize(
    ("fields", "reader"),
    [
        ({"tasks": [{"name": "qa_probe"}]}, "a task evaluates it"),
        ({"curves": {"every": 2, "tasks": [{"name": "qa_probe"}]}}, "its downstream callback"),
        (
            {"stages": [{"name": "pretrain"}, {"name": "more", "overrides": {}}]},
            "stage 'more' starts from it",
        ),
    ],
)
def test_planning_refuses_what_would_read_a_diverged_runs_final_model(tmp_path, fields, reader):
    spec = ExperimentSpec.model_validate({**SPEC, **fields})
    with pytest.raises(ConfigError) as error:
        plan_experiment(spec, store=tmp_path)
    message = str(error.value)
    assert message.startswith("run variant 'lo' (stage pretrain) sets trainer.on_divergence: ")
    assert reader in message and "use on_divergence: raise" in message
