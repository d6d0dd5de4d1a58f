"""docs/tutorial-own-corpus.md, run as written: its file blocks (```` ```yaml title=NAME ````) are
written, its command blocks (```` ```bash ````, one ``transferlab`` command a line) run in order
through the CLI, on a small English, German and Spanish corpus this test writes (its sample
records, the ```` ```jsonl ```` blocks, are records of that corpus).

The only change to the tutorial's commands: every ``transferlab run`` gets the dotted overrides
in ``SMALL`` appended, so the experiment trains a one-layer model for a few steps (seconds on 2
cores) instead of the tutorial's micro model for 1000 steps."""

from __future__ import annotations

import json
import random
import re
import shlex
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.data import DataWarning
from transferlab.experiment import load_experiment, plan_experiment

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial-own-corpus.md"
FILE_BLOCK = re.compile(r"^```\w+ title=(\S+)\n(.*?)^```$", re.M | re.S)
COMMAND_BLOCK = re.compile(r"^```bash\n(.*?)^```$", re.M | re.S)
JSONL_BLOCK = re.compile(r"^```jsonl\n(.*?)^```$", re.M | re.S)
USER_FILES = ("corpus.jsonl", "heldout.jsonl", "quiz.jsonl")  # the user's own, which we write

# Appended to every `transferlab run`: a tiny model, few steps, 2 seeds, a 300-token vocabulary.
# The token budget repeats the English variant's only domain (35 documents of ~60 tokens) more
# than 4 times, so the data warning the tutorial describes is raised.
SMALL = [
    "base.model.d_model=32",
    "base.model.n_layers=1",
    "base.model.n_heads=2",
    "base.data.seq_len=32",
    "base.tokenizer.vocab_size=300",
    "base.data.mixture.tokens=12000",
    "base.trainer.max_steps=4",
    "base.trainer.batch_size=4",
    "base.trainer.eval_interval=4",
    "base.trainer.eval_batches=1",
    "base.trainer.checkpoint_interval=4",
    "base.trainer.progress=false",
    "seeds=[0,1]",
]

# Per language: subjects x actions make 36 distinct two-sentence documents, the closing
# sentence chosen by a shift, so another shift makes documents the corpus does not hold.
SENTENCES = {
    "en": (
        ["The old fisherman", "My grandmother", "The young teacher", "Our neighbour",
         "The little girl", "A tired doctor"],
        ["walks to the market every morning", "reads the newspaper in the garden",
         "cooks soup for the whole family", "repairs the bicycle behind the house",
         "writes a long letter to her brother", "waits for the train at the station"],
        ["The weather is cold and windy today.", "Everyone is happy about the news.",
         "Later they drink tea together.", "Nobody knows why it takes so long.",
         "The children laugh and play outside.", "It starts to rain in the afternoon."],
    ),
    "de": (
        ["Der alte Fischer", "Meine Großmutter", "Der junge Lehrer", "Unser Nachbar",
         "Das kleine Mädchen", "Eine müde Ärztin"],
        ["geht jeden Morgen zum Markt", "liest die Zeitung im Garten",
         "kocht Suppe für die ganze Familie", "repariert das Fahrrad hinter dem Haus",
         "schreibt einen langen Brief an ihren Bruder", "wartet am Bahnhof auf den Zug"],
        ["Das Wetter ist heute kalt und windig.", "Alle freuen sich über die Nachricht.",
         "Später trinken sie zusammen Tee.", "Niemand weiß, warum es so lange dauert.",
         "Die Kinder lachen und spielen draußen.", "Am Nachmittag fängt es an zu regnen."],
    ),
    "es": (
        ["El viejo pescador", "Mi abuela", "El joven maestro", "Nuestro vecino",
         "La niña pequeña", "Una médica cansada"],
        ["camina al mercado cada mañana", "lee el periódico en el jardín",
         "cocina sopa para toda la familia", "repara la bicicleta detrás de la casa",
         "escribe una carta larga a su hermano", "espera el tren en la estación"],
        ["Hoy el tiempo está frío y hace viento.", "Todos están contentos con la noticia.",
         "Más tarde toman té juntos.", "Nadie sabe por qué tarda tanto.",
         "Los niños ríen y juegan fuera.", "Por la tarde empieza a llover."],
    ),
}  # fmt: skip
FRENCH = "Le vieux pêcheur marche au marché chaque matin. Il fait froid aujourd'hui."
LANGUAGES = tuple(SENTENCES)
HELD_NEW, HELD_COPIED = 8, 4  # held-out documents per language: new ones, copies of the corpus


def _documents(language: str, shift: int) -> list[str]:
    subjects, actions, closings = SENTENCES[language]
    return [
        f"{subject} {action}. {closings[(i + j + shift) % len(closings)]}"
        for i, subject in enumerate(subjects)
        for j, action in enumerate(actions)
    ]


def _write_jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))


def _write_user_files(folder: Path) -> None:
    """corpus.jsonl: 36 documents per language, shuffled, one French document and one exact
    copy; heldout.jsonl: per language 8 new documents and 4 copied from the corpus; quiz.jsonl:
    6 items per language."""
    corpus = [text for language in LANGUAGES for text in _documents(language, 0)]
    corpus += [FRENCH, corpus[0]]
    random.Random(0).shuffle(corpus)
    _write_jsonl(folder / "corpus.jsonl", corpus)
    held = []
    for language in LANGUAGES:
        held += _documents(language, 3)[:HELD_NEW] + _documents(language, 0)[:HELD_COPIED]
    _write_jsonl(folder / "heldout.jsonl", held)
    quiz = [item for language in LANGUAGES for item in _quiz(language)]
    (folder / "quiz.jsonl").write_text(
        "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in quiz)
    )


def _quiz(language: str) -> list[dict]:
    """Per subject: the first sentence's last word after the rest of it, among two other actions'
    last words."""
    subjects, actions, _ = SENTENCES[language]
    last = [action.rsplit(" ", 1) for action in actions]
    return [
        {
            "context": f"{subject} {last[j][0]}",
            "choices": [last[(j + k) % len(last)][1] for k in range(3)],
            "gold": 0,
            "language": language,
        }
        for j, subject in enumerate(subjects)
    ]


def _tutorial() -> tuple[dict[str, str], list[list[str]]]:
    """The files the tutorial writes (name: text) and its commands, in order, as argv lists."""
    text = TUTORIAL.read_text()
    files = {name: body for name, body in FILE_BLOCK.findall(text)}
    commands = [
        shlex.split(line, comments=True)
        for block in COMMAND_BLOCK.findall(text)
        for line in block.splitlines()
        if line.strip()
    ]
    return files, commands


def test_the_tutorial_shows_valid_files_and_transferlab_commands(tmp_path) -> None:
    files, commands = _tutorial()
    assert sorted(files) == ["experiment.yaml", "languages.yaml", "look.yaml"]
    assert all(argv[0] == "transferlab" for argv in commands)
    # The experiment file is valid at its full size, and its domains are languages.yaml's.
    (tmp_path / "experiment.yaml").write_text(files["experiment.yaml"])
    plan = plan_experiment(load_experiment(tmp_path / "experiment.yaml"), tmp_path / "store")
    assert [(r.variant, r.seed) for r in plan.runs] == [
        (variant, seed) for variant in ("english", "multilingual") for seed in (0, 1, 2)
    ]
    languages = yaml.safe_load(files["languages.yaml"])["sources"]
    assert yaml.safe_load(files["experiment.yaml"])["base"]["data"]["sources"] == languages
    # Its sample records are records of the files this test writes.
    _write_user_files(tmp_path)
    written = [
        json.loads(line)
        for name in USER_FILES
        for line in (tmp_path / name).read_text().split("\n")
        if line
    ]
    samples = [
        json.loads(line)
        for block in JSONL_BLOCK.findall(TUTORIAL.read_text())
        for line in block.splitlines()
    ]
    assert len(samples) == 3 and all(sample in written for sample in samples)


def test_the_tutorial_runs_end_to_end_on_a_corpus_it_writes(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    _write_user_files(tmp_path)
    files, commands = _tutorial()
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    runner, output = CliRunner(), {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        for argv in commands:
            args = argv[1:] + (SMALL if argv[1] == "run" else [])
            result = runner.invoke(app, args)
            assert result.exit_code == 0, f"{shlex.join(argv)}\n{result.output}"
            output[shlex.join(argv)] = " ".join(result.output.split())  # tables wrap at 80
    data_warnings = {str(w.message) for w in caught if issubclass(w.category, DataWarning)}
    _check_data_commands(output)
    _check_experiment(tmp_path / "experiments" / "own-corpus", output, data_warnings)


def _words(texts: list[str]) -> int:
    return sum(len(text.split()) for text in texts)


def _check_data_commands(output: dict[str, str]) -> None:
    """Step 1: the corpus as written, the French document and the copy removed, then one domain
    of 36 documents per language."""
    total = 3 * 36 + 2
    corpus = [t for language in LANGUAGES for t in _documents(language, 0)]
    corpus_words = _words(corpus) + _words([FRENCH, corpus[0]])
    assert f"│ total │ {total} │ {corpus_words:,} │" in output["transferlab data stats look.yaml"]
    curated = output["transferlab data curate look.yaml --out curated"]
    assert f"kept {total - 2} of {total} documents" in curated
    inspected = output["transferlab data inspect curated"]
    assert f"[language:fr] {FRENCH}" in inspected and "[exact_dedup] duplicate of" in inspected
    languages = output["transferlab data stats languages.yaml"]
    for language in LANGUAGES:
        words = _words(_documents(language, 0))
        assert f"│ {language} │ 36 │ {words:,} │" in languages


def _check_experiment(exp: Path, output: dict[str, str], data_warnings: set[str]) -> None:
    """Steps 3 and 4: the verdict, the per-language groups, the notes, the data warning, the
    per-domain validation and the report, as the tutorial describes them."""
    assert "estimated time:" in output["transferlab run experiment.yaml --dry-run"]
    summary = json.loads((exp / "summary.json").read_text())
    [verdict] = summary["verdicts"]
    assert (verdict["variant"], verdict["reference"], verdict["task"]) == (
        "multilingual",
        "english",
        "text_likelihood",
    )
    assert verdict["status"] in {"reproduced", "not reproduced", "inconclusive"}
    said = " ".join(f"verdict: {verdict['text']}".split())
    assert output["transferlab run experiment.yaml"].endswith(said)
    assert output["transferlab results experiments/own-corpus"].endswith(said)

    variants = ("english", "multilingual")
    for task in ("text_likelihood", "multiple_choice"):
        groups = {(g["variant"], g["group"]) for g in summary["groups"] if g["task"] == task}
        assert groups == {(v, language) for v in variants for language in LANGUAGES}
    # The quiz is compared on its own metrics, and listed as not compared on bits per byte.
    assert [s["task"] for s in summary["skipped"]] == ["multiple_choice"]
    compared = {(c["task"], c["metric"]) for c in summary["comparisons"]}
    assert ("multiple_choice", "correct") in compared
    notes = {(n["variant"], n["group"], n["name"]): n for n in summary["notes"]}
    for v in variants:
        for language in LANGUAGES:
            scored, seen = notes[v, language, "documents"], notes[v, language, "in_pretraining"]
            assert scored["low"] + seen["high"] == scored["high"] + seen["low"]  # same per run
            assert scored["low"] + seen["low"] == HELD_NEW + HELD_COPIED
    # The copies of the corpus are found in the runs that trained on their language only.
    assert [notes["english", lang, "in_pretraining"]["high"] for lang in ("de", "es")] == [0, 0]
    for v, language in [("english", "en"), ("multilingual", "de"), ("multilingual", "es")]:
        assert 1 <= notes[v, language, "in_pretraining"]["low"] <= HELD_COPIED
    # The comparison pairs the documents every run scored.
    rows = pq.read_table(exp / "results" / "examples.parquet").to_pylist()
    scored_by = {}
    for row in rows:
        if row["task"] == "text_likelihood":
            scored_by.setdefault((row["variant"], row["seed"]), set()).add(row["example_id"])
    quiz_rows = [row for row in rows if row["task"] == "multiple_choice"]
    assert len(quiz_rows) == 2 * 2 * 6 * len(LANGUAGES)  # variants x seeds x items
    [comparison] = [c for c in summary["comparisons"] if c["metric"] == "bits_per_byte"]
    assert comparison["n_examples"] == len(set.intersection(*scored_by.values()))

    # The same tokenizer for both variants; German and Spanish left out of the English one,
    # whose only domain the budget repeats past 4 epochs: the data warning.
    data = pq.read_table(exp / "results" / "data.parquet").to_pylist()
    assert len({d["tokenizer"] for d in data}) == 1 and data[0]["tokenizer"].startswith("shared")
    left_out = {(d["variant"], d["domain"]) for d in data if d["left_out"]}
    assert left_out == {("english", "de"), ("english", "es")}
    [warning] = {w.split(": ", 1)[1] for w in data_warnings}
    assert warning.startswith("domain 'en' is repeated")
    # Validation: the English runs validate on English alone.
    for run in pq.read_table(exp / "results" / "runs.parquet").to_pylist():
        domains = [lang for lang in LANGUAGES if run[f"final_val_loss/{lang}"] is not None]
        assert domains == (["en"] if run["variant"] == "english" else list(LANGUAGES))

    assert (
        output["transferlab report experiments/own-corpus"]
        == "report: experiments/own-corpus/report.html"
    )
    html = (exp / "report.html").read_text()
    for section in ("Per-group results", "Task notes", "Data warnings", "left out (weight 0)"):
        assert section in html
    per_group = html[html.index("Per-group results") : html.index("Task notes")]
    assert all(f"<td>{language}</td>" in per_group for language in LANGUAGES)
    assert "english: domain &#x27;en&#x27; is repeated" in html
