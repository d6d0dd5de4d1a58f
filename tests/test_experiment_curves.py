"""Transfer curves in experiments: ``curves:`` adds the downstream callback to one stage's runs
(other runs keep their keys), results collect its rows, analysis estimates the headline metric
per variant and step, and the report and terminal summary show them."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from scipy import stats

from tiny_experiment import tiny_base
from transferlab.config import ConfigError, RunConfig, validate
from transferlab.evaluate.downstream import DOWNSTREAM_DIR, DownstreamConfig
from transferlab.experiment import ExperimentSpec, collect_results, plan_experiment, run_experiment
from transferlab.experiment.analyze import analyze
from transferlab.experiment.planner import run_key
from transferlab.experiment.results import CURVE_SCHEMA, ResultTables
from transferlab.report import print_summary
from transferlab.report.markup import esc

QA_SCORE = {"name": "qa_score", "n_choices": 4}
BASE = tiny_base(5)
N_ITEMS = 8 * 6  # 16 people, half QA-test, six attributes


def _spec(**fields: Any) -> ExperimentSpec:
    data = {
        "name": "curves",
        "base": BASE,
        "axes": {"lr": {"low": {"optimizer.lr": 1e-4}, "high": {"optimizer.lr": 1e-2}}},
        "seeds": [0, 1],
        "tasks": [QA_SCORE],
        **fields,
    }
    return ExperimentSpec.model_validate(data)


@pytest.fixture
def store(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    return tmp_path / "store"


def _downstream(cfg: RunConfig) -> list[DownstreamConfig]:
    return [c for c in cfg.trainer.callbacks if isinstance(c, DownstreamConfig)]


def test_a_spec_without_curves_keeps_its_run_keys(store):
    plan = plan_experiment(_spec())
    for run in plan.runs:
        overrides = {"optimizer": {"name": "adamw", "lr": {"low": 1e-4, "high": 1e-2}[run.variant]}}
        cfg = validate(RunConfig, {**BASE, **overrides, "seed": run.seed, "name": "run"})
        assert run.key == run_key(cfg)  # as a run of the same config without curves is keyed
        assert _downstream(run.config) == []


def test_curves_add_the_callback_to_their_stage_only(store):
    stages = [{"name": "pretrain"}, {"name": "more", "overrides": {"trainer.max_steps": 4}}]
    without = plan_experiment(_spec(stages=stages))
    curves = {"every": 2, "tasks": [QA_SCORE], "stage": "pretrain"}
    with_curves = plan_experiment(_spec(stages=stages, curves=curves))
    for a, b in zip(without.runs, with_curves.runs, strict=True):
        if a.stage == "pretrain":
            assert a.key != b.key
            (callback,) = _downstream(b.config)
            assert (callback.every, [t.task_name for t in callback.tasks]) == (2, ["qa_score"])
            assert callback.steps(b.config.trainer.max_steps) == [2, 4, 5]
        else:  # the later stage inherits no callback; its key changes only with its parent's
            assert _downstream(b.config) == []
            assert b.parent != a.parent and b.key != a.key


def test_curves_default_to_the_experiments_tasks_on_the_last_stage(store):
    spec = _spec(tasks=[{**QA_SCORE, "label": "zero_shot"}], curves={"every": 3})
    assert spec.curves_stage == "pretrain"
    (callback,) = _downstream(plan_experiment(spec).runs[0].config)
    assert [t.task_name for t in callback.tasks] == ["zero_shot"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"curves": {"every": 2, "stage": "later"}}, "curves.stage 'later' is not one of"),
        ({"tasks": [], "curves": {"every": 2}}, "curves has no tasks: list them in curves.tasks"),
        (
            {"curves": {"every": 2, "tasks": [QA_SCORE, {**QA_SCORE, "n_shots": 1}]}},
            "curves.tasks ['qa_score', 'qa_score'] repeat a name; give each a distinct label",
        ),
        (
            {
                "base": {
                    **BASE,
                    "trainer": {
                        **BASE["trainer"],
                        "callbacks": [{"name": "downstream", "tasks": [QA_SCORE]}],
                    },
                },
                "curves": {"every": 2},
            },
            "curves and a downstream callback in base.trainer.callbacks would both write",
        ),
        ({"curves": {"every": 0}}, "curves.every"),
    ],
)
def test_a_bad_curves_section_fails_when_the_spec_is_read(fields, message):
    with pytest.raises(ValueError) as caught:
        _spec(**fields)
    assert message in str(caught.value)


def test_a_curve_task_that_cannot_read_a_variant_fails_at_plan_time(store):
    spec = _spec(
        axes={"objective": {"clm": {}, "mlm": {"objective.name": "mlm"}}},
        curves={"every": 2, "tasks": [{"name": "qa_finetune"}]},
    )
    with pytest.raises(ConfigError) as caught:
        plan_experiment(spec)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("task 'qa_finetune' cannot read run variant 'mlm': its objective")
    assert not (store / "runs").exists()  # nothing was trained


def _hand_interval(matrix: np.ndarray, level: float) -> tuple[float, float, float]:
    """Mean and t interval of a [seed, example] matrix from the two-way ANOVA parts (the seed
    part with S-1 df, the example part with E-1 df), clipped to [0, 1]."""
    s, e = matrix.shape
    mean = matrix.mean()
    rows, cols = matrix.mean(axis=1), matrix.mean(axis=0)
    ms_noise = ((matrix - rows[:, None] - cols[None, :] + mean) ** 2).sum() / ((s - 1) * (e - 1))
    seed_part = e * rows.var(ddof=1) / (s * e)
    example_part = max(s * cols.var(ddof=1) - ms_noise, 0.0) / (s * e)
    q = 0.5 + level / 2
    half = np.sqrt(
        stats.t.ppf(q, s - 1) ** 2 * seed_part + stats.t.ppf(q, e - 1) ** 2 * example_part
    )
    return mean, max(mean - half, 0.0), min(mean + half, 1.0)


def test_an_experiment_with_curves_collects_estimates_and_reports_them(tmp_path, store):
    exp = tmp_path / "exp"
    result = run_experiment(_spec(curves={"every": 2}), exp, log=lambda _: None)

    curves = pq.read_table(exp / "results" / "curves.parquet")
    names = curves.column_names
    assert names[:9] == [
        "variant", "seed", "stage", "run_id", "step", "tokens", "task", "example_id", "group"
    ]  # fmt: skip
    assert names[9:] == ["correct", "acc_norm", "p_correct", "margin", "norm_p_correct"]
    assert curves.num_rows == 2 * 2 * 3 * N_ITEMS  # variants x seeds x steps {2, 4, 5} x items
    rows = curves.to_pylist()
    assert {(r["step"], r["tokens"]) for r in rows} == {(2, 2 * 128), (4, 4 * 128), (5, 5 * 128)}

    # At the last step the callback saw the final weights: its rows are the evaluation's rows.
    examples = pq.read_table(exp / "results" / "examples.parquet").to_pylist()
    final = {(r["run_id"], r["example_id"]): r for r in rows if r["step"] == 5}
    assert len(final) == len(examples) == 4 * N_ITEMS
    for row in examples:
        curve = final[(row["run_id"], row["example_id"])]
        assert [curve[m] for m in names[9:]] == [row[m] for m in names[9:]]

    # summary["curves"]: per variant and step, the mean and interval over seeds and examples.
    assert len(result.summary["curves"]) == 2 * 3
    for point in result.summary["curves"]:
        chosen = [r for r in rows if (r["variant"], r["step"]) == (point["variant"], point["step"])]
        ids = sorted({r["example_id"] for r in chosen})
        matrix = np.array(
            [[next(r["correct"] for r in chosen if (r["seed"], r["example_id"]) == (seed, i))
              for i in ids] for seed in (0, 1)]
        )  # fmt: skip
        mean, low, high = _hand_interval(matrix, 0.95)
        assert (point["task"], point["metric"], point["higher_is_better"]) == (
            "qa_score",
            "correct",
            True,
        )
        assert (point["n_seeds"], point["n_examples"]) == (2, N_ITEMS)
        assert point["mean"] == pytest.approx(mean, abs=1e-12)
        assert (point["low"], point["high"]) == pytest.approx((low, high), abs=1e-9)

    page = result.report.read_text()
    assert "<h2>Transfer curves</h2>" in page
    figure = re.search(r'<img src="data:image/png;base64,[^"]+" alt="([^"]+)">', page[page.index(
        "<h2>Transfer curves</h2>"):])  # fmt: skip
    assert figure and figure.group(1) == "transfer curve of correct on qa_score"
    assert esc("qa_score during training (stage pretrain, evaluated every 2 steps") in page
    assert "correct (higher is better) per variant" in page

    out = io.StringIO()
    print_summary(exp, Console(file=out, width=200))
    lines = [line for line in out.getvalue().splitlines() if "transfer curves" in line]
    assert lines == [
        "transfer curves: qa_score (correct) at 3 steps (2 to 5) per variant; plotted with "
        "intervals in report.html"
    ]
    assert json.loads((exp / "summary.json").read_text())["curves"] == result.summary["curves"]


def test_results_refuse_a_run_missing_downstream_rows(tmp_path, store):
    spec = _spec(seeds=[0], axes={}, curves={"every": 5})
    run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    plan = plan_experiment(spec)
    (plan.runs[0].run_dir / DOWNSTREAM_DIR / "step_00000005" / "qa_score.parquet").unlink()
    with pytest.raises(ValueError, match="has no downstream rows for qa_score at step 5"):
        collect_results(plan, tmp_path / "exp")
    # The finished tables are left as they were.
    assert pq.read_table(tmp_path / "exp" / "results" / "curves.parquet").num_rows == N_ITEMS


def test_curve_intervals_match_a_hand_computation_over_seeds_and_examples():
    """Synthetic rows (3 seeds x 5 examples, seed and example effects plus noise) whose
    intervals are not clipped, so the hand formula is checked on both ends."""
    rng = np.random.default_rng(0)
    spec = _spec(tasks=[], axes={}, seeds=[0, 1, 2], curves={"every": 10, "tasks": [QA_SCORE]})
    rows, matrices = [], {}
    for step, level in ((10, 0.3), (20, 0.6)):
        matrix = (
            level
            + rng.normal(0, 0.02, (3, 1))
            + rng.normal(0, 0.05, (1, 5))
            + rng.normal(0, 0.01, (3, 5))
        )
        matrices[step] = matrix
        for seed, example in np.ndindex(matrix.shape):
            rows.append(
                {
                    "variant": "base",
                    "seed": seed,
                    "stage": "pretrain",
                    "run_id": f"r{seed}",
                    "step": step,
                    "tokens": step * 128,
                    "task": "qa_score",
                    "example_id": f"e{example}",
                    "group": "g",
                    "correct": float(matrix[seed, example]),
                }
            )
    schema = CURVE_SCHEMA.append(pa.field("correct", pa.float64()))
    tables = ResultTables(pa.table({}), pa.table({}), pa.Table.from_pylist(rows, schema))
    summary = analyze(spec, tables)
    assert [(p["step"], p["tokens"]) for p in summary["curves"]] == [(10, 1280), (20, 2560)]
    for point in summary["curves"]:
        mean, low, high = _hand_interval(matrices[point["step"]], 0.95)
        assert 0 < low < mean < high < 1  # not clipped
        assert (point["mean"], point["low"], point["high"]) == pytest.approx((mean, low, high))
        assert (point["n_seeds"], point["n_examples"], point["variant"]) == (3, 5, "base")
