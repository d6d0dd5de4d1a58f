"""Verdict stability (--reseed K) and the scoreboard (recipes run --all, recipes scoreboard):
the seed sets, the stability computed from constructed summaries, and end to end on two tiny
recipe files (one of which fails) through the CLI."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from tiny_experiment import tiny_base
from transferlab.cli import app
from transferlab.experiment.reseed import fresh_seed_sets, seed_stride, verdict_stability

runner = CliRunner()


def test_fresh_seed_sets_shift_by_the_span_and_never_repeat_a_seed():
    assert fresh_seed_sets([0, 1, 2], 3) == [[3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert seed_stride([0, 10]) == 11
    assert fresh_seed_sets([0, 10], 2) == [[11, 21], [22, 32]]
    sets = [[4, 7, 5], *fresh_seed_sets([4, 7, 5], 10)]
    seeds = [seed for one in sets for seed in one]
    assert len(seeds) == len(set(seeds))  # disjoint
    assert fresh_seed_sets([4, 7, 5], 2) == sets[1:3]  # set k does not depend on K
    with pytest.raises(ValueError, match="at least 1 fresh seed set, got 0"):
        fresh_seed_sets([0], 0)


def _summary(*statuses: str) -> dict:
    verdicts = [
        {"status": s, "claim": f"c{i}", "variant": "a", "reference": "b", "task": "t",
         "metric": "correct", "diff": 0.1 * i, "low": -0.1, "high": 0.3, "expected": "better"}
        for i, s in enumerate(statuses)
    ]  # fmt: skip
    return {"verdicts": verdicts}


def test_stability_counts_the_fresh_sets_that_repeat_the_original_verdict():
    original = _summary("reproduced", "inconclusive")
    fresh = [
        ([2, 3], "reseed-1", _summary("reproduced", "inconclusive")),
        ([4, 5], "reseed-2", _summary("inconclusive", "inconclusive")),
        ([6, 7], "reseed-3", _summary("reproduced", "not reproduced")),
        ([8, 9], "reseed-4", _summary("reproduced", "inconclusive")),
    ]
    out = verdict_stability("x", [0, 1], original, fresh)
    first, second = out["expectations"]
    assert (out["stride"], out["k"]) == (2, 4)
    assert first["subject"] == "a vs b on t (correct)"
    assert [r["status"] for r in first["reseeds"]] == [
        "reproduced", "inconclusive", "reproduced", "reproduced"]  # fmt: skip
    assert first["reseeds"][1]["seeds"] == [4, 5] and first["reseeds"][1]["dir"] == "reseed-2"
    # 3 of 4: Clopper-Pearson [Beta(0.025; 3, 2), Beta(0.975; 4, 1)] = [0.1941, 0.9937]
    assert (first["repeats"]["successes"], first["repeats"]["n"]) == (3, 4)
    assert first["repeats"]["fraction"] == 0.75
    assert first["repeats"]["low"] == pytest.approx(0.194120, abs=1e-6)
    assert first["repeats"]["high"] == pytest.approx(0.975**0.25, abs=1e-12)  # 4, 1: closed
    assert first["distribution"] == {"reproduced": 3, "inconclusive": 1}
    # an inconclusive original repeats when the fresh sets are inconclusive too
    assert second["repeats"]["successes"] == 3
    assert second["distribution"] == {"inconclusive": 3, "not reproduced": 1}


def _recipe(name: str, presets: dict) -> dict:
    return {
        "name": name,
        "paper": f"Paper of {name}",
        "description": "tiny",
        "base": tiny_base(2),
        "axes": {"lr": {"lo": {"optimizer.lr": 1e-4}, "hi": {"optimizer.lr": 3e-3}}},
        "seeds": [0, 1],
        "measures": [{"name": "final_val_loss"}],
        "expect": {"measure": "final_val_loss", "variant": "hi", "reference": "lo",
                   "claim": f"claim of {name}"},
        "presets": presets,
    }  # fmt: skip


def test_run_all_reseeds_writes_stability_and_a_scoreboard_with_a_failed_row(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "alpha.yaml").write_text(yaml.safe_dump(_recipe("alpha", {"quick": {}})))
    broken = _recipe("beta", {"quick": {"base.model.d_model": 33}})  # not divisible by heads
    (recipes / "beta.yaml").write_text(yaml.safe_dump(broken))
    monkeypatch.setattr("transferlab.recipes.RECIPES_DIR", recipes)
    root = tmp_path / "exps"
    args = ["recipes", "run", "--all", "--preset", "quick", "--reseed", "1", "--out", str(root)]

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    alpha = root / "alpha-quick"
    assert yaml.safe_load((alpha / "reseed-1" / "experiment.yaml").read_text())["seeds"] == [2, 3]
    stability = json.loads((alpha / "stability.json").read_text())
    (expectation,) = stability["expectations"]
    original = json.loads((alpha / "summary.json").read_text())["verdicts"][0]
    again = json.loads((alpha / "reseed-1" / "summary.json").read_text())["verdicts"][0]
    assert expectation["original"]["status"] == original["status"]
    assert expectation["repeats"]["successes"] == int(again["status"] == original["status"])
    (log_line,) = [json.loads(x) for x in (alpha / "invocations.jsonl").read_text().splitlines()]
    assert (log_line["runs"], log_line["runs_reused"], log_line["seeds"]) == (4, 0, [0, 1])
    assert log_line["seconds"] > 0

    rows = json.loads((root / "scoreboard" / "scoreboard.json").read_text())
    assert [(r["recipe"], r["status"]) for r in rows] == [
        ("alpha-quick", original["status"]),
        ("beta-quick", "failed"),
    ]
    assert rows[0]["paper"] == "Paper of alpha" and rows[0]["claim"] == "claim of alpha"
    assert rows[0]["mde80"] == original["mde80"] and rows[0]["reseeds"] == 1
    assert rows[0]["report"] == "../alpha-quick/report.html"
    assert "d_model=33 is not divisible by n_heads=2" in rows[1]["error"]
    page = (root / "scoreboard" / "index.html").read_text()
    assert '<a href="../alpha-quick/report.html">report</a>' in page and "failed" in page
    assert (root / "scoreboard" / "scoreboard.md").read_text().count("\n") == 4
    assert (root / "scoreboard" / "scoreboard.csv").read_text().startswith("recipe,claim,paper,")

    # again: both seed sets are finished, so nothing reruns; the scoreboard rebuilds alone
    second = runner.invoke(app, args)
    assert second.output.count("finished earlier") == 2, second.output
    assert len((alpha / "invocations.jsonl").read_text().splitlines()) == 1
    out = tmp_path / "board"
    rebuilt = runner.invoke(app, ["recipes", "scoreboard", str(alpha), "--out", str(out)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert [r["recipe"] for r in json.loads((out / "scoreboard.json").read_text())] == [
        "alpha-quick"
    ]
