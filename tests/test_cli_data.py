"""`transferlab data curate | inspect | stats` on a corpus the test writes."""

from __future__ import annotations

import gzip
import json

import yaml
from typer.testing import CliRunner

from transferlab.cli import app

runner = CliRunner()

CLEAN = (
    "The committee met on a quiet morning to review the annual budget of the town library. "
    "Members discussed how the library could extend its opening hours during the winter, and "
    "they asked the treasurer to estimate the cost of heating the reading rooms for longer. "
    "After a short debate they agreed to publish the minutes, to invite comments from the "
    "public, and to meet again at the end of the month to take a final decision on the plan."
)


def _corpus(tmp_path):
    records = [
        {"text": CLEAN},
        {"text": CLEAN},  # an exact copy
        {"text": "buy buy buy buy buy buy buy buy buy buy"},  # fails the Gopher quality filter
        {"text": CLEAN.replace("committee", "council").replace("quiet", "busy")},
    ]
    path = tmp_path / "web.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    job = {
        "sources": [{"name": "jsonl", "path": str(path), "label": "web"}],
        "curation": {"filters": ["gopher_quality"], "dedup": {"exact": True, "minhash": None}},
    }
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(job))
    return config


def test_curate_then_inspect_then_stats(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    config, out = _corpus(tmp_path), tmp_path / "curated"
    result = runner.invoke(app, ["data", "curate", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"curated: {out / 'documents.jsonl.gz'}" in result.output
    with gzip.open(out / "documents.jsonl.gz", "rt") as f:
        kept = [json.loads(line)["text"] for line in f]
    assert len(kept) == 2 and kept[0] == CLEAN

    inspected = runner.invoke(app, ["data", "inspect", str(out)], terminal_width=200)
    assert inspected.exit_code == 0, inspected.output
    assert "gopher_quality" in inspected.output and "buy buy" in inspected.output

    as_json = runner.invoke(app, ["data", "stats", str(config), "--json"])
    assert as_json.exit_code == 0, as_json.output
    stats = json.loads(as_json.output)
    assert json.dumps(stats).count('"web"') >= 1
    curated_stats = json.loads(
        runner.invoke(app, ["data", "stats", "--curated", str(out), "--json"]).output
    )
    assert curated_stats != stats


def test_data_commands_fail_in_one_line(tmp_path):
    missing = runner.invoke(app, ["data", "inspect", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and missing.output.startswith("error: ")
    both = runner.invoke(app, ["data", "stats"])
    assert both.exit_code == 2 and "either a curation job CONFIG or --curated DIR" in both.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sources": [{"name": "jsonl", "path": "x", "colour": 1}]}))
    result = runner.invoke(app, ["data", "curate", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "sources.0.colour: unknown field" in result.output
