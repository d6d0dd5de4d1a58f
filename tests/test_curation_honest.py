"""Honest data tools: ``data inspect`` lists the reasons that removed the most documents first,
rewriting filters (C4's line removal) report what they changed with before/after samples, the
deduplication that runs by default says so, and ``data stats`` names the unit it counts."""

from __future__ import annotations

import json

import yaml
from rich.console import Console
from typer.testing import CliRunner

from transferlab.artifacts import write_json_atomic
from transferlab.cli import app
from transferlab.config.schemas import TokenizerConfig
from transferlab.curation import CurationConfig, inspect, print_report, print_stats, stats
from transferlab.curation.display import dedup_summary
from transferlab.curation.report import STATS_FILE, CurationReport, StageStats, Tally
from transferlab.data.sources import TextDocument
from transferlab.data.tokenizer import train_tokenizer

SENTENCES = (
    "The old harbour was busy every morning of the year. Fishing boats came in before dawn "
    "with their nets full. Traders waited on the quay to buy the best of the catch. Children "
    "watched the gulls fight over what fell from the crates. By noon the harbour was quiet "
    "again and the boats were tied up for the night."
)
MENU = "Home\nAbout us\nContact\n" + SENTENCES  # C4 keeps it without the three menu lines


def _printed(report: CurationReport, samples: bool = True) -> str:
    console = Console(record=True, width=240)
    print_report(report, console, samples=samples)
    return console.export_text()


def test_inspect_lists_the_reasons_that_removed_most_documents_first(tmp_path):
    reasons = {"a_rare": 1, "b_rare": 2, "c_rare": 3, "zz_main": 50}
    stage = StageStats("rules", "filter", docs_in=100, docs_removed=56, reasons=reasons)
    report = CurationReport(Tally(100), Tally(44), [stage])
    write_json_atomic(tmp_path / STATS_FILE, report.to_dict())  # stores keys sorted by name
    assert (
        list(json.loads((tmp_path / STATS_FILE).read_text())["stages"][0]["reasons"])[0] == "a_rare"
    )
    text = _printed(inspect(tmp_path))
    assert "zz_main (50), c_rare (3), b_rare (2)" in text and "a_rare" not in text
    assert "warning" not in text  # 44% kept


def test_a_curation_that_keeps_almost_nothing_warns():
    report = CurationReport(Tally(1000), Tally(9), [])
    assert "warning: curation kept less than 1% of the documents" in _printed(report)
    assert "warning" not in _printed(CurationReport(Tally(1000), Tally(10), []))


def test_a_rewriting_filter_counts_and_samples_what_it_changed(tmp_path):
    cfg = CurationConfig(filters=["c4_quality"], dedup={"minhash": None})
    docs = [TextDocument("menu", MENU, "web"), TextDocument("plain", SENTENCES + " More.", "web")]
    result = cfg.run(docs, tmp_path / "out", tmp_path / "scores")
    stage = result.report.stage("c4_quality")
    assert (stage.docs_removed, stage.docs_modified) == (0, 1)
    [change] = stage.modified_samples
    assert (change.id, change.before, change.after) == ("menu", MENU, SENTENCES)
    assert change.tokens_before - change.tokens_after == 4 == stage.tokens_removed
    assert inspect(result.out_dir) == result.report  # kept through curation_stats.json
    text = _printed(inspect(result.out_dir))
    assert "1 (50.0%)" in text  # rewritten: one of the two documents it kept
    assert "c4_quality: 1 sample(s) of kept documents it rewrote" in text
    assert f"web/menu [{len(MENU.split())} -> {len(SENTENCES.split())} words]" in text
    assert "before: Home About us Contact The old harbour" in text
    assert "after:  The old harbour" in text


def test_the_summary_says_which_deduplication_runs_by_default():
    default = CurationConfig(filters=["gopher_quality"]).dedup.to_dict()
    assert dedup_summary(default) == (
        "dedup: exact (default; dedup.exact: false turns it off), then MinHash near-duplicates "
        "at similarity >= 0.7 (default; dedup.minhash: null turns it off)"
    )
    tuned = CurationConfig(dedup={"exact": False, "minhash": {"threshold": 0.8}}).dedup
    assert dedup_summary(tuned.to_dict()) == (
        "dedup: no exact, then MinHash near-duplicates at similarity >= 0.8"
    )
    assert dedup_summary({"exact": True, "minhash": None}).endswith(", no MinHash")
    report = CurationReport(Tally(), Tally(), [], {"dedup": default})
    assert _printed(report).startswith("dedup: exact (default;")


def test_stats_count_words_or_a_tokenizers_tokens_and_say_which(tmp_path):
    docs = [TextDocument("a", "one two three", "x"), TextDocument("b", "four, five.", "y")]
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), [d.text for d in docs])
    words, tokens = stats(docs), stats(docs, tokenizer=tokenizer)
    assert (words.unit, words.total.tokens) == ("words", 5)
    assert (tokens.unit, tokens.total.tokens) == (
        "tokens",
        7,
    )  # one, " two", " three"; four, ",", " five", "."
    for result, unit in ((words, "words"), (tokens, "tokens")):
        console = Console(record=True, width=120)
        print_stats(result, console)
        text = console.export_text()
        assert f"Corpus: {unit} per domain" in text and f"Document length ({unit})" in text
        assert f"mean {unit}" in text


def test_data_stats_takes_a_tokenizer(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "one two, three."}) + "\n")
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"sources": [{"name": "jsonl", "path": str(path)}]}))
    tokenizer = tmp_path / "tokenizer.json"
    train_tokenizer(TokenizerConfig(kind="word"), ["one two, three."]).save(tokenizer)
    runner = CliRunner()
    out = runner.invoke(app, ["data", "stats", str(job), "--tokenizer", str(tokenizer), "--json"])
    assert out.exit_code == 0, out.output
    counted = json.loads(out.output)
    assert (counted["unit"], counted["total"]["tokens"]) == ("tokens", 5)
    words = json.loads(runner.invoke(app, ["data", "stats", str(job), "--json"]).output)
    assert (words["unit"], words["total"]["tokens"]) == ("words", 3)
