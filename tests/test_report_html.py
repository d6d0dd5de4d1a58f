"""The HTML report: self-contained, one figure per section, every number with its interval and n,
hostile strings escaped, written atomically, and still written when data is partial.

``make_experiment`` writes a small synthetic experiment directory (two variants x two seeds x one
task) with the files the experiment runner writes; the terminal and browser tests use it too.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from transferlab.evaluate import QaFinetuneConfig
from transferlab.report import formatting as fmt
from transferlab.report import html as report_html
from transferlab.report import write_report
from transferlab.report.markup import esc, tag

# Escaping: HTML (a script tag), rich markup ([bold]) and matplotlib mathtext ($_$ fails to parse).
HOSTILE = "<script>alert(1)</script>[bold]$_$"
HOSTILE_PREDICTION = "<img src=x onerror=alert(2)>"
DESCRIPTION = 'Does <b>augmentation</b> help? "quoted" & more'
VARIANTS = ("fixed", HOSTILE)
TASK = "qa_finetune"
GROUPS = ("birth_city", "university")
VERDICT_TEXT = (
    f"reproduced: {HOSTILE} vs fixed on {TASK} (correct, higher is better): difference +0.250 "
    "[+0.100, +0.400] (95% interval; n = 2 seeds x 6 examples); expected better"
)


def _estimate(
    variant: str, metric: str, mean: float, low: float, high: float, **extra: Any
) -> dict:
    return {
        "task": TASK,
        "metric": metric,
        "variant": variant,
        "mean": mean,
        "low": low,
        "high": high,
        "n_seeds": 2,
        "n_examples": 6,
        "level": 0.95,
        "method": "t",
        "seed_variance_captured": True,
        **extra,
    }


def synthetic_summary() -> dict[str, Any]:
    return {
        "experiment": "synthetic",
        "description": DESCRIPTION,
        "primary_metric": "correct",
        "level": 0.95,
        "metrics": {
            TASK: {"shown": "correct", "declared": [m.to_dict() for m in QaFinetuneConfig.metrics]}
        },
        "skipped": [],
        "estimates": [
            _estimate("fixed", "correct", 0.25, 0.1, 0.4),
            _estimate(HOSTILE, "correct", 0.5, 0.35, 0.65),
            _estimate("fixed", "p_correct", 0.21, 0.15, 0.27),
            _estimate(HOSTILE, "p_correct", 0.44, 0.38, 0.5),
        ],
        "groups": [
            {**_estimate(v, "correct", m, m - 0.2, m + 0.2), "group": g, "n_examples": 3}
            for v, base in zip(VARIANTS, (0.25, 0.5), strict=True)
            for g, m in zip(GROUPS, (base - 0.05, base + 0.05), strict=True)
        ],
        "comparisons": [
            {
                "task": TASK,
                "metric": "correct",
                "variant": HOSTILE,
                "reference": "fixed",
                "diff": 0.25,
                "low": 0.1,
                "high": 0.4,
                "p_value": 0.004,
                "mde80": 0.213,  # the p_correct row below has none: a summary from before MDE80
                "verdict": "better",
                "n_seeds": 2,
                "n_examples": 6,
                "level": 0.95,
                "method": "t",
                "min_effect": 0.0,
                "higher_is_better": True,
                "seed_variance_captured": True,
                "n_dropped": 0,
            },
            {
                "task": TASK,
                "metric": "p_correct",
                "variant": HOSTILE,
                "reference": "fixed",
                "diff": 0.23,
                "low": -0.02,
                "high": 0.48,
                "p_value": 0.07,
                "verdict": "inconclusive",
                "n_seeds": 2,
                "n_examples": 6,
                "level": 0.95,
                "method": "t",
                "min_effect": 0.0,
                "higher_is_better": True,
                "seed_variance_captured": True,
                "n_dropped": 0,
            },
        ],
        "correlations": [
            {
                "task": TASK,
                "metric": "correct",
                "rho": -0.8,
                "low": -1.0,
                "high": 0.4,
                "n_runs": 4,
                "level": 0.95,
                "reason": None,
            },
            {
                "task": TASK,
                "metric": "p_correct",
                "rho": math.nan,
                "low": math.nan,
                "high": math.nan,
                "n_runs": 4,
                "level": 0.95,
                "reason": "y is the same for every run, so it has no ranking",
            },
        ],
        "verdict": {"status": "reproduced", "text": VERDICT_TEXT},
    }


def _metrics_rows(offset: float) -> list[dict[str, Any]]:
    rows = []
    for step in range(0, 41, 10):
        row = {
            "step": step,
            "tokens": step * 256,
            "train_loss": 5.0 - 0.05 * step + offset,
            "lr": 1e-3,
            "grad_norm": 1.0,
            "tokens_per_s": 1000.0,
            "elapsed_s": step / 10,
        }
        if step in (20, 40):
            row["val_loss"] = 5.2 - 0.05 * step + offset
        rows.append(row)
    return rows


def _example_rows(variant: str, seed: int, run_id: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(6):
        correct = (i + seed + (2 if variant == HOSTILE else 0)) % 4 < (
            2 if variant == HOSTILE else 1
        )
        rows.append(
            {
                "run_id": run_id,
                "task": TASK,
                "example_id": f"q{i}",
                "group": GROUPS[i % 2],
                "split": "test",
                "prediction": HOSTILE_PREDICTION if i == 0 else f"city {i}",
                "target": f"city {i}",
                "correct": float(correct),
                "p_correct": 0.2 + 0.1 * correct,
                "variant": variant,
                "seed": seed,
            }
        )
    return rows


def make_experiment(
    root: Path, seeds: tuple[int, ...] = (0, 1), summary: dict[str, Any] | None = None
) -> Path:
    """An experiment directory as the runner writes it: spec, plan, results, metrics, summary."""
    exp = root / "exp"
    (exp / "results").mkdir(parents=True)
    spec = {
        "name": "synthetic",
        "description": DESCRIPTION,
        "base": {"world": {"name": "bios", "num_people": 40}},
        "axes": {
            "augmentation": {"fixed": {"world.rephrasings": 1}, HOSTILE: {"world.rephrasings": 5}}
        },
        "seeds": list(seeds),
        "tasks": [{"name": TASK, "steps": 30}],
        "compare": {"baseline": "fixed", "metric": "correct"},
        "expect": {"variant": HOSTILE, "direction": "better", "claim": "rephrasing helps"},
    }
    (exp / "experiment.yaml").write_text(yaml.safe_dump(spec))
    runs, evals, examples, summaries = [], [], [], []
    for v, variant in enumerate(VARIANTS):
        for seed in seeds:
            run_id = f"run{v}{seed}"
            run_dir = root / "store" / "runs" / run_id
            run_dir.mkdir(parents=True)
            metrics = _metrics_rows(offset=0.3 * v + 0.1 * seed)
            (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
            runs.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "run_id": run_id,
                    "run_dir": str(run_dir),
                    "status": "done",
                }
            )
            evals.append({"run_id": run_id, "task": TASK, "key": f"e{v}{seed}", "status": "done"})
            examples += _example_rows(variant, seed, run_id)
            summaries.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "run_id": run_id,
                    "steps": 40,
                    "tokens": 10240,
                    "final_val_loss": metrics[-1]["val_loss"],
                    "final_train_loss": metrics[-1]["train_loss"],
                    "params_non_embedding": 12345,
                    "params_total": 23456,
                    "flops_per_token": 74070,
                    "train_seconds": 4.0,
                }
            )
    plan = {
        "command": "transferlab run experiment.yaml",
        "runs": runs,
        "evals": evals,
        "estimated_seconds": 125.0,
    }
    (exp / "plan.json").write_text(json.dumps(plan))
    pq.write_table(pa.Table.from_pylist(examples), exp / "results" / "examples.parquet")
    pq.write_table(pa.Table.from_pylist(summaries), exp / "results" / "runs.parquet")
    (exp / "summary.json").write_text(json.dumps(summary or synthetic_summary()))
    return exp


def png_size(uri: str) -> tuple[int, int]:
    """Width and height from the IHDR chunk of a PNG data URI (fails on anything but a PNG)."""
    data = base64.b64decode(uri.removeprefix("data:image/png;base64,"), validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    exp = make_experiment(tmp_path_factory.mktemp("report"))
    path = write_report(exp)
    assert path == exp / "report.html"
    return path.read_text(encoding="utf-8")


def test_report_is_self_contained_with_one_image_per_figure(report: str):
    assert "http://" not in report and "https://" not in report
    references = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', report)
    assert references and all(ref.startswith("data:image/png;base64,") for ref in references)
    # training curves, estimates (dot and whisker), forest plot, loss-vs-downstream scatter
    images = _images(report)
    assert len(images) == 4 == report.count("<img")
    for uri in images:
        width, height = png_size(uri)
        assert width > 300 and height > 100
    assert "<link" not in report and "@import" not in report


def test_verdict_comes_first_with_the_reproducing_command(report: str):
    verdict = esc(VERDICT_TEXT)
    assert verdict in report
    assert report.index(verdict) < report.index("<h2>Plan</h2>") < report.index("<img")
    assert 'class="verdict good"' in report
    assert "claim: rephrasing helps" in report
    assert "<pre><code>transferlab run experiment.yaml</code></pre>" in report
    assert "2 min 05 s" in report  # estimated time from plan.json


def test_every_number_has_its_interval_and_n(report: str):
    assert "0.500 [0.350, 0.650]" in report and "0.250 [0.100, 0.400]" in report
    assert "2 seeds x 6 examples" in report
    assert "+0.250 [+0.100, +0.400]" in report and "0.004" in report
    assert "+0.230 [-0.020, +0.480]" in report
    # MDE80 beside each p-value; n/a for a comparison that has none
    mde = '<td class="num">0.004</td><td class="num">0.213</td>'
    assert mde in report and '<td class="num">0.070</td><td class="num">n/a</td>' in report
    assert "MDE80: the minimum detectable effect at 80% power" in report
    # Spearman: the defined one with its interval and n in the caption, the undefined one's reason
    assert "Spearman rho = -0.800 [-1.000, +0.400]" in report and "n = 4 runs" in report
    assert "n/a [interval n/a]" in report
    assert "y is the same for every run, so it has no ranking" in report
    # per-group table: each cell a mean, its interval and n
    assert '0.450 [0.250, 0.650]<br><span class="note">2 x 3</span>' in report


def test_runs_table_joins_plan_and_results(report: str):
    row = re.search(r"<tr><td>fixed</td><td>1</td><td>run01</td>(.*?)</tr>", report)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    # status, evals done, steps, tokens, final train loss, final val loss, params, train time
    assert cells == ["done", "1/1", "40", "10,240", "3.100", "3.300", "12,345", "4 s"]


def test_data_strings_are_escaped(report: str):
    assert "<script" not in report.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;[bold]$_$" in report
    assert HOSTILE_PREDICTION not in report
    assert "&lt;img src=x onerror=alert(2)&gt;" in report
    assert "Does &lt;b&gt;augmentation&lt;/b&gt; help? &quot;quoted&quot; &amp; more" in report
    assert "default-src 'none'" in report  # and a CSP that forbids scripts altogether


def test_markup_escapes_data_once():
    cell = tag("td", "<b>&", tag("i", '"x"'), cls='a"b')
    assert cell == '<td class="a&quot;b">&lt;b&gt;&amp;<i>&quot;x&quot;</i></td>'


def test_single_seed_without_summary_details_still_reports(tmp_path: Path):
    summary = synthetic_summary()
    for row in summary["estimates"] + summary["comparisons"]:
        row.update(n_seeds=1, seed_variance_captured=False)
    summary["correlations"] = [
        {
            "task": TASK,
            "metric": "correct",
            "rho": math.nan,
            "low": math.nan,
            "high": math.nan,
            "n_runs": 2,
            "level": 0.95,
            "reason": "rank correlation needs at least 3 runs, got 2",
        }
    ]
    summary["groups"] = []
    exp = make_experiment(tmp_path, seeds=(0,), summary=summary)
    page = write_report(exp).read_text()
    assert "one seed: the interval covers example-to-example variation only" in page
    assert (
        "Spearman rho undefined (rank correlation needs at least 3 runs, got 2; n = 2 runs)" in page
    )
    assert "No per-group results." in page
    assert "Seeds per variant: fixed: 1; &lt;script&gt;" in page
    assert len(_images(page)) == 4


def test_a_planned_but_unrun_experiment_reports_its_plan(tmp_path: Path):
    exp = make_experiment(tmp_path)
    for name in ("summary.json", "results/examples.parquet", "results/runs.parquet"):
        (exp / name).unlink()
    plan = json.loads((exp / "plan.json").read_text())
    for run in plan["runs"]:
        run["status"] = "todo"
        (Path(run["run_dir"]) / "metrics.jsonl").unlink()
    (exp / "plan.json").write_text(json.dumps(plan))
    page = write_report(exp).read_text()
    assert "no verdict yet: the experiment has no summary.json" in page
    assert "No training metrics yet." in page and "No summary.json yet: no estimates." in page
    assert page.count("<td>todo</td>") == 4 and "<img" not in page


def test_not_an_experiment_directory(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="has no experiment.yaml"):
        write_report(tmp_path)


def test_a_failed_render_leaves_the_old_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    exp = make_experiment(tmp_path)
    (exp / "report.html").write_text("old report")

    def broken(record: object) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr(report_html, "render", broken)
    with pytest.raises(RuntimeError, match="render failed"):
        write_report(exp)
    monkeypatch.undo()
    assert (exp / "report.html").read_text() == "old report"
    write_report(exp)
    assert sorted(p.name for p in exp.iterdir() if p.name.startswith(".")) == []


def test_report_from_the_real_analysis(tmp_path: Path):
    """The summary the experiment's analysis writes is the summary the report reads."""
    from transferlab.experiment.analyze import analyze
    from transferlab.experiment.results import ResultTables
    from transferlab.experiment.spec import ExperimentSpec

    exp = make_experiment(tmp_path)
    spec = ExperimentSpec.model_validate(yaml.safe_load((exp / "experiment.yaml").read_text()))
    tables = ResultTables(
        pq.read_table(exp / "results" / "examples.parquet"),
        pq.read_table(exp / "results" / "runs.parquet"),
    )
    summary = analyze(spec, tables)
    (exp / "summary.json").write_text(json.dumps(summary))
    page = write_report(exp).read_text()
    assert esc(summary["verdict"]["text"]) in page
    mde = fmt.number(summary["verdict"]["mde80"])
    assert summary["verdict"]["text"].endswith(
        f"; MDE80 = {mde}: an effect smaller than this would be missed 20% of the time or more"
    )
    for row in summary["comparisons"]:
        assert f'<td class="num">{fmt.number(row["mde80"])}</td>' in page
    for row in summary["estimates"] + summary["comparisons"]:
        mean = row.get("mean", row.get("diff"))
        signed = "diff" in row
        text = fmt.interval(mean, row["low"], row["high"], signed=signed)
        assert text in page
    assert len(_images(page)) == 4


def test_quantity_intervals_read_at_any_scale():
    """A measure's numbers (a loss, steps, bytes): four significant digits of the largest of
    the three, as many decimals for each; integers without decimals, thousands separated."""
    assert fmt.quantity_interval(5.472, 5.334, 5.61) == "5.472 [5.334, 5.610]"
    assert fmt.quantity_interval(0.06, -0.1724, 0.2923, signed=True) == "+0.0600 [-0.1724, +0.2923]"
    assert fmt.quantity_interval(66.67, 12.3, 121.0) == "66.7 [12.3, 121.0]"
    assert fmt.quantity_interval(22400, 21000, 23800) == "22,400 [21,000, 23,800]"
    assert fmt.quantity_interval(3.0, math.nan, math.nan) == "3 [interval n/a]"
    assert fmt.quantity_interval(math.nan, math.nan, math.nan) == "n/a [interval n/a]"
