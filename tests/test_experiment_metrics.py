"""Declared metrics end to end: a task registered here declares a lower-is-better metric, and its
rows flow through collect_results, analyze and the report with that direction; a task that
does not declare the compared metric is skipped, and says so."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from transferlab.config import TASKS, MetricSpec, TaskConfig
from transferlab.evaluate import ExampleResult, Task
from transferlab.experiment import ExperimentSpec, load_results, run_experiment
from transferlab.report import print_summary
from transferlab.report.markup import esc

N_EXAMPLES = 10


def _size(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


class _Synthetic(Task[Any]):
    """Rows whose metric falls with the model's size: the wide variant has fewer errors."""

    def read(self, subject) -> list[dict[str, Any]]:
        model, run_id, seed = subject.model, subject.run_id, subject.seed
        size, cfg = _size(model), self.cfg
        rows = []
        for i in range(N_EXAMPLES):
            jitter = 0.05 * ((i * size + seed) % 3)  # differs by variant, so diffs vary
            value = cfg.value(i, size) + jitter
            result = ExampleResult(
                run_id, cfg.task_name, f"x{i}", "g", "test", "", "", {cfg.metrics[0].name: value}
            )
            rows.append(result.to_dict())
        return rows


@TASKS.register("test_errors")
class ErrorsConfig(TaskConfig):
    name: Literal["test_errors"] = "test_errors"
    uses_world: ClassVar[bool] = False
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("errors", False, (0.0, None), "mistakes per example"),
    )

    def value(self, i: int, size: int) -> float:
        return i % 5 + 2e4 / size

    def build(self) -> _Synthetic:
        return _Synthetic(self)


@TASKS.register("test_hits")
class HitsConfig(TaskConfig):
    name: Literal["test_hits"] = "test_hits"
    uses_world: ClassVar[bool] = False
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("hits", True, (0.0, 1.0), "share of targets hit"),
    )

    def value(self, i: int, size: int) -> float:
        return 0.5 + 0.05 * (i % 3) - 6e3 / size

    def build(self) -> _Synthetic:
        return _Synthetic(self)


def _spec() -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "declared",
            "base": {
                "world": {"name": "bios", "num_people": 8},
                "tokenizer": {"kind": "word"},
                "data": {"seq_len": 32, "val_fraction": 0.1},
                "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
                "schedule": {"name": "constant"},
                "trainer": {
                    "max_steps": 2,
                    "batch_size": 4,
                    "eval_interval": 2,
                    "eval_batches": 1,
                    "checkpoint_interval": 2,
                    "progress": False,
                },
            },
            "axes": {"width": {"narrow": {}, "wide": {"model.d_model": 64}}},
            "seeds": [0, 1, 2],
            "tasks": [{"name": "test_errors"}, {"name": "test_hits"}],
            "compare": {"baseline": "narrow", "metric": "errors"},
            "expect": {"variant": "wide", "direction": "better", "task": "test_errors"},
        }
    )


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("declared")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFERLAB_CACHE", str(root / "store"))
        result = run_experiment(_spec(), root / "exp", log=lambda _: None)
    return result


def test_rows_hold_their_tasks_declared_metrics_only(experiment) -> None:
    tables = load_results(experiment.exp_dir)
    rows = tables.examples.to_pylist()
    assert len(rows) == 2 * 3 * 2 * N_EXAMPLES
    # Stacked, each task's rows are null in the other task's metric, never NaN-padded values.
    assert {r["task"] for r in rows if r["errors"] is not None} == {"test_errors"}
    assert {r["task"] for r in rows if r["hits"] is not None} == {"test_hits"}
    store = experiment.exp_dir.parent / "store" / "evals"
    cached = [pq.read_table(path).column_names for path in store.glob("*/rows.parquet")]
    assert sorted(c[-1] for c in cached) == ["errors"] * 6 + ["hits"] * 6


def test_analysis_uses_each_tasks_declarations_and_direction(experiment) -> None:
    summary = experiment.summary
    assert summary["primary_metric"] == "errors"
    assert summary["metrics"]["test_errors"] == {
        "shown": "errors",
        "declared": [
            {
                "name": "errors",
                "higher_is_better": False,
                "range": [0.0, None],
                "description": "mistakes per example",
            }
        ],
    }
    assert summary["metrics"]["test_hits"]["shown"] == "hits"  # its headline metric
    assert summary["skipped"] == [
        {
            "task": "test_hits",
            "metric": "errors",
            "reason": "test_hits does not declare errors (it declares ['hits'])",
        }
    ]
    for section in ("estimates", "comparisons", "correlations"):
        pairs = {(row["task"], row["metric"]) for row in summary[section]}
        assert pairs == {("test_errors", "errors"), ("test_hits", "hits")}, section
    errors = next(c for c in summary["comparisons"] if c["metric"] == "errors")
    # Wide has fewer errors: a negative difference, and lower is better, so "better".
    assert errors["diff"] < 0 and errors["high"] < 0
    assert (errors["higher_is_better"], errors["verdict"]) == (False, "better")
    hits = next(c for c in summary["comparisons"] if c["metric"] == "hits")
    assert hits["diff"] > 0 and (hits["higher_is_better"], hits["verdict"]) == (True, "better")
    verdict = summary["verdict"]
    assert (verdict["status"], verdict["diff"]) == ("reproduced", errors["diff"])
    assert verdict["text"].startswith(
        "reproduced: wide vs narrow on test_errors (errors, lower is better): difference -"
    )


def test_report_and_terminal_show_the_declared_direction(experiment) -> None:
    page = experiment.report.read_text()
    assert esc(experiment.summary["verdict"]["text"]) in page
    declared = "<td>errors</td><td>lower</td><td>[0, inf)</td><td>mistakes per example</td>"
    assert declared in page
    assert "<td>hits</td><td>higher</td><td>[0, 1]</td><td>share of targets hit</td>" in page
    skipped = "Not compared on errors: test_hits does not declare errors (it declares ['hits'])."
    assert esc(skipped) in page
    assert "Paired difference in errors (lower is better)" in page
    assert "lower is better" in page.split("<h2>Paired differences</h2>")[1]
    console = Console(record=True, width=160)
    print_summary(experiment.exp_dir, console)
    flat = "".join(console.export_text().split())  # rich wraps a title to its table's width
    assert "test_errors:errors(lowerisbetter),mean[95%interval]" in flat
    assert "test_hits:paireddifferencesinhits(higherisbetter)" in flat
    summary = json.loads((experiment.exp_dir / "summary.json").read_text())
    assert summary["skipped"] == experiment.summary["skipped"]
