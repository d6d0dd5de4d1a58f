"""The terminal summary: estimates and comparisons of the primary metric with intervals and n, the
verdict line, and data strings printed literally (never read as rich markup)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from rich.console import Console

from test_report_html import HOSTILE, VERDICT_TEXT, make_experiment
from transferlab.report import print_summary
from transferlab.report.terminal import (
    domain_validation_table,
    measure_comparisons_table,
    weighting_line,
)


def _printed(exp: Path) -> str:
    console = Console(record=True, width=120)
    print_summary(exp, console)
    return console.export_text()


def test_summary_shows_estimates_comparisons_and_verdict(tmp_path: Path):
    text = _printed(make_experiment(tmp_path))
    estimates, comparisons = text.split(
        "qa_finetune: paired differences in correct (higher is better) [95% interval]"
    )
    # the title names the metric with the direction its task declares (rich may wrap it)
    title = "qa_finetune: correct (higher is better), mean [95% interval], n = seeds x examples"
    assert "".join(title.split()) in "".join(estimates.split())
    assert "mean [interval]" in estimates
    assert "difference [interval]" in comparisons
    lines = estimates.splitlines()
    assert any(
        "fixed" in line and "0.250 [0.100, 0.400]" in line and "2 x 6" in line for line in lines
    )
    assert "0.500 [0.350, 0.650]" in estimates
    assert "0.210" not in text  # p_correct: only the primary metric is summarised
    assert "+0.250 [+0.100, +0.400]" in comparisons and "better" in comparisons
    assert "0.004" in comparisons
    assert "MDE80" in comparisons
    assert any("0.004" in line and "0.213" in line for line in comparisons.splitlines())
    # rich wraps long cells, so compare the text with the table's borders and spaces taken out
    flat = "".join(text.replace("│", " ").split())
    assert "".join(f"{HOSTILE} vs fixed".split()) in flat
    assert "".join(f"verdict: {VERDICT_TEXT}".split()) in flat


def test_summary_needs_the_analysis(tmp_path: Path):
    exp = make_experiment(tmp_path)
    (exp / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no summary.json; run the experiment"):
        print_summary(exp, Console(record=True))


def _table_text(table) -> str:
    console = Console(record=True, width=120)
    console.print(table)
    return console.export_text()


def test_final_validation_per_domain_is_a_mean_over_seeds_with_n():
    runs = [
        {"variant": "mixed", "seed": 0, "final_val_loss/prose": 2.0, "final_val_loss/code": 3.0},
        {"variant": "mixed", "seed": 1, "final_val_loss/prose": 2.5, "final_val_loss/code": None},
        {"variant": "prose", "seed": 0, "final_val_loss/prose": 1.0, "final_val_loss/code": None},
    ]
    for run in runs:
        run |= {"stage": "pretrain", "val_weighting": "mixture"}
    lines = _table_text(domain_validation_table(runs)).splitlines()
    assert [line.rstrip() for line in lines] == [
        "final val loss per domain",
        "┏━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━━┓",
        "┃ variant ┃       prose ┃        code ┃",
        "┡━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━━┩",
        "│ mixed   │ 2.250 (n=2) │ 3.000 (n=1) │",
        "│ prose   │ 1.000 (n=1) │         n/a │",
        "└─────────┴─────────────┴─────────────┘",
    ]
    assert weighting_line(runs) == (
        "per domain: the mean over the seeds that have it (n seeds); val_loss weighs the domains "
        "by trainer.validation_weighting = mixture: weighted by each domain's share of the "
        "training mixture"
    )


def test_runs_of_one_domain_show_no_domain_table():
    runs = [{"variant": "a", "stage": "pretrain", "final_val_loss/prose": 2.0}, {"variant": "b"}]
    assert domain_validation_table(runs) is None


def test_measure_comparisons_show_mde80_at_the_measures_scale():
    row = {"variant": "a", "reference": "b", "diff": 1200.0, "low": 300.0, "high": 2100.0}
    row |= {"p_value": 0.02, "p_holm": 0.04, "mde80": 1534.2, "verdict": "better"}
    row |= {"n_seeds": 3, "n_dropped": 0, "n_censored": 0}
    one_seed = {**row, "low": math.nan, "high": math.nan, "mde80": math.nan, "n_seeds": 1}
    measure = {"measure": "steps", "comparisons": [row, {**one_seed, "variant": "c"}]}
    console = Console(record=True, width=160)
    console.print(measure_comparisons_table(measure, "95%"))
    lines = console.export_text().splitlines()
    assert any("MDE80" in line for line in lines)
    assert any("a vs b" in line and "0.040" in line and "1,534" in line for line in lines)
    assert any("c vs b" in line and "n/a" in line.split("│")[5] for line in lines)
