"""``compare.correction: holm``: the comparisons of one task on one metric (or of one measure) are
a family; each gets a Holm-adjusted p-value, and its interval (so its verdict) is at the
Bonferroni level. Without the correction nothing changes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from rich.console import Console

from transferlab.analysis import compare_paired, holm
from transferlab.experiment.analyze import analyze
from transferlab.experiment.results import ResultTables
from transferlab.experiment.spec import CompareSpec, ExpectSpec, ExperimentSpec
from transferlab.report.terminal import comparisons_table

VARIANTS = ["none", "clm", "mlm", "ul2"]


def _spec(**compare) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "e",
            "axes": {"objective": {name: {} for name in VARIANTS}},
            "seeds": [0, 1, 2],
            "tasks": [{"name": "qa_probe"}],
            "compare": {"metric": "correct", **compare},
        }
    )


def _tables(values: dict[str, np.ndarray]) -> ResultTables:
    rows = [
        {
            "run_id": f"{variant}-{seed}",
            "task": "qa_probe",
            "example_id": f"{i}:birth_date",
            "group": "birth_date",
            "split": "test",
            "prediction": "",
            "target": "",
            "correct": float(value),
            "p_correct": float(value),
            "margin": 0.0,
            "variant": variant,
            "seed": seed,
        }
        for variant, matrix in values.items()
        for seed, row in enumerate(matrix)
        for i, value in enumerate(row)
    ]
    return ResultTables(pa.Table.from_pylist(rows), pa.table({"run_id": [], "final_val_loss": []}))


def _values() -> dict[str, np.ndarray]:
    # variant -> (rate, seed of its draw): mlm - none is about +0.07, decided at 95% alone
    rates = {"none": (0.2, 0), "clm": (0.5, 2), "mlm": (0.27, 1), "ul2": (0.52, 3)}
    return {
        name: (np.random.default_rng(seed).random((3, 300)) < rate).astype(float)
        for name, (rate, seed) in rates.items()
    }


def test_the_family_level_is_bonferronis_and_none_keeps_the_level():
    assert CompareSpec(correction="holm").family_level(6) == pytest.approx(1 - 0.05 / 6)
    assert CompareSpec(correction="holm", level=0.9).family_level(4) == pytest.approx(0.975)
    assert CompareSpec(correction="holm").family_level(1) == 0.95
    assert CompareSpec().family_level(6) == 0.95


def test_holm_adjusts_the_p_values_and_widens_every_interval_to_the_bonferroni_level():
    values = _values()
    plain = [
        c for c in analyze(_spec(), _tables(values))["comparisons"] if c["metric"] == "correct"
    ]
    summary = analyze(_spec(correction="holm"), _tables(values))
    held = [c for c in summary["comparisons"] if c["metric"] == "correct"]
    # No baseline and no pairs: all 6 pairs of the 4 variants, in order.
    assert [(c["variant"], c["reference"]) for c in held] == [
        ("none", "clm"),
        ("none", "mlm"),
        ("none", "ul2"),
        ("clm", "mlm"),
        ("clm", "ul2"),
        ("mlm", "ul2"),
    ]
    assert all("p_holm" not in c for c in plain)
    assert [c["p_holm"] for c in held] == pytest.approx(holm([c["p_value"] for c in held]))
    for c, p in zip(held, plain, strict=True):
        a, b = values[c["variant"]], values[c["reference"]]
        expected = compare_paired(a, b, level=1 - 0.05 / 6)
        assert (c["low"], c["high"], c["level"]) == pytest.approx(
            (expected.low, expected.high, 1 - 0.05 / 6)
        )
        assert c["p_value"] == pytest.approx(p["p_value"])  # the p-value itself is the test's
        assert c["low"] < p["low"] and c["high"] > p["high"]
    # Each metric is its own family: margin's comparisons are adjusted among themselves.
    margins = [c for c in summary["comparisons"] if c["metric"] == "margin"]
    assert len(margins) == 6 and all(c["level"] == pytest.approx(1 - 0.05 / 6) for c in margins)


def test_a_difference_decided_alone_can_be_inconclusive_in_its_family():
    expect = {"variant": "mlm", "reference": "none", "task": "qa_probe"}
    alone = analyze(_spec().model_copy(update={"expect": ExpectSpec(**expect)}), _tables(_values()))
    spec = _spec(correction="holm").model_copy(update={"expect": ExpectSpec(**expect)})
    family = analyze(spec, _tables(_values()))
    assert (alone["verdict"]["status"], family["verdict"]["status"]) == (
        "reproduced",
        "inconclusive",
    )
    assert "(95% interval; n = 3 seeds x 300 examples)" in alone["verdict"]["text"]
    assert "(99.17% interval; n = 3 seeds x 300 examples)" in family["verdict"]["text"]


def test_the_terminal_shows_holm_p_values_at_the_familys_level():
    summary = analyze(_spec(correction="holm"), _tables(_values()))
    console = Console(record=True, width=160)
    console.print(comparisons_table(summary, "qa_probe", "correct", "95%"))
    text = console.export_text()
    assert "[99.17% (Bonferroni over 6)" in text and "p (Holm)" in text  # the title wraps
    plain = Console(record=True, width=160)
    plain.print(
        comparisons_table(analyze(_spec(), _tables(_values())), "qa_probe", "correct", "95%")
    )
    assert "[95% interval]" in plain.export_text() and "Holm" not in plain.export_text()
