"""The curation pipeline end to end: stage order and counts, side files, output, atomicity."""

import json

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from transferlab.config import validate
from transferlab.curation import (
    CurationConfig,
    DocumentWriter,
    inspect,
    print_report,
    read_documents,
)
from transferlab.curation.report import STATS_FILE, SampleReservoir
from transferlab.data.sources import JsonlConfig, TextDocument

RIVER = (
    "The history of the river valley is long and varied. Farmers settled along the banks "
    "and built small villages with stone houses. Over the centuries, the villages grew into "
    "towns, and the towns became a city that traded with the coast. Merchants brought salt, "
    "cloth and iron, and they took grain and wool back to the sea. Today the valley is known "
    "for its orchards and for the old bridge that still carries traffic across the water."
)
BREAD = (
    "Baking bread at home takes patience more than skill. The dough needs time to rise, and "
    "the yeast works best in a warm kitchen. After the first rise, the baker shapes the loaf "
    "and lets it rest again. The oven should be hot before the bread goes in, and a tray of "
    "water makes the crust crisp. When the loaf sounds hollow, it is ready to cool on a rack."
)
STARS = (
    "On a clear night the sky above the desert is full of stars. Astronomers come to the high "
    "plateau because the air is dry and the nearest town is far away. They point their "
    "telescopes at distant galaxies and record the faint light for hours. In the morning they "
    "compare the images with older ones to find stars that have changed. It is slow work, but "
    "it has revealed many new planets around other suns."
)
CORPUS = [
    ("river", RIVER),
    ("short", "The cat sat on the mat and then it went to sleep."),  # gopher_quality
    ("spam", "\n".join(["Click here to subscribe to our newsletter today."] * 4 + [BREAD])),
    ("menu", "Home\nAbout us\nContact\n" + STARS),  # C4 trims the three menu lines
    ("copy", RIVER.replace(". ", ".\n")),  # exact duplicate of river, up to whitespace
    ("bread", BREAD),
    ("bread2", BREAD.replace("warm", "cozy")),  # near duplicate
]
FILTERS = ["gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality"]


def words(text):
    return len(text.split())


def corpus():
    return (TextDocument(doc_id, text, "web", {"n": i}) for i, (doc_id, text) in enumerate(CORPUS))


@pytest.fixture
def result(tmp_path):
    return CurationConfig(filters=FILTERS).run(corpus(), tmp_path / "out", tmp_path / "scores")


def test_stages_run_in_order_with_exact_counts(result):
    report = result.report
    assert [(s.name, s.kind) for s in report.stages] == [
        ("gopher_quality", "filter"),
        ("gopher_repetition", "filter"),
        ("c4_quality", "filter"),
        ("fineweb_quality", "filter"),
        ("exact_dedup", "dedup"),
        ("minhash_dedup", "dedup"),
    ]
    counts = [(s.docs_in, s.docs_removed, s.docs_modified) for s in report.stages]
    assert counts == [(7, 1, 0), (6, 1, 0), (5, 0, 1), (5, 0, 0), (5, 1, 0), (4, 1, 0)]
    tokens = {s.name: s.tokens_removed for s in report.stages}
    assert tokens == {
        "gopher_quality": 12,
        "gopher_repetition": words(CORPUS[2][1]),
        "c4_quality": 4,  # Home, About us, Contact
        "fineweb_quality": 0,
        "exact_dedup": words(RIVER),
        "minhash_dedup": words(BREAD),
    }
    assert report.stage("gopher_repetition").reasons == {"dup_line_frac": 1}
    total = sum(words(text) for _, text in CORPUS)
    assert (report.input.documents, report.input.tokens) == (7, total)
    assert (report.output.documents, report.output.tokens) == (3, total - sum(tokens.values()))


def test_kept_documents_are_written_in_order_with_their_metadata(result):
    kept = list(result.documents())
    assert [(d.id, d.source, d.metadata) for d in kept] == [
        ("river", "web", {"n": 0}),
        ("menu", "web", {"n": 3}),
        ("bread", "web", {"n": 5}),
    ]
    assert kept[1].text == STARS  # as C4 left it
    # A plain jsonl.gz that the jsonl source reads as well.
    again = list(JsonlConfig(path=str(result.documents_path), id_field="id").iter_documents())
    assert [(d.id, d.text) for d in again] == [(d.id, d.text) for d in kept]


def test_samples_of_removed_documents_carry_reasons_and_duplicates(result):
    report = result.report
    (short,) = report.stage("gopher_quality").samples
    assert (short.id, short.reason, short.tokens) == ("short", "gopher_short_doc", 12)
    (near,) = report.stage("minhash_dedup").samples
    assert (near.id, near.reason, near.duplicate_of) == ("bread2", "minhash_dedup", "web/bread")
    assert 0.7 <= near.score < 1


def test_heuristics_side_file_has_one_row_per_input_document(result):
    rows = pq.read_table(result.out_dir / "scores" / "heuristics.parquet").to_pylist()
    assert [r["id"] for r in rows] == [doc_id for doc_id, _ in CORPUS]
    assert rows[1] == {
        "source": "web",
        "id": "short",
        "gopher_quality.kept": False,
        "gopher_quality.reason": "gopher_short_doc",
        "gopher_repetition.kept": None,  # never reached
        "gopher_repetition.reason": None,
        "c4_quality.kept": None,
        "c4_quality.reason": None,
        "fineweb_quality.kept": None,
        "fineweb_quality.reason": None,
    }
    assert [r["fineweb_quality.kept"] for r in rows] == [True, None, None, True, True, True, True]


def test_stats_file_round_trips_through_inspect(result):
    data = json.loads((result.out_dir / STATS_FILE).read_text())
    assert data["files"] == {
        "documents": "documents.jsonl.gz",
        "heuristics": "scores/heuristics.parquet",
        "dedup": "scores/dedup.parquet",
    }
    assert data["config"]["filters"][0]["name"] == "gopher_quality"
    assert inspect(result.out_dir) == result.report
    assert sorted(p.name for p in result.out_dir.iterdir()) == [
        "COMPLETE",
        STATS_FILE,
        "documents.jsonl.gz",
        "scores",
    ]


def test_print_report_shows_every_stage_and_samples(result):
    console = Console(record=True, width=160)
    print_report(inspect(result.out_dir), console)
    text = console.export_text()
    for name in ("gopher_quality", "c4_quality", "minhash_dedup"):
        assert name in text
    assert "web/bread2 [minhash_dedup] duplicate of web/bread" in text
    report = result.report
    assert f"kept 3 of 7 documents (42.9%), {report.output.tokens} of {report.input.tokens}" in text


def test_a_failed_run_leaves_no_output_and_keeps_the_previous_one(tmp_path):
    out = tmp_path / "out"
    CurationConfig().run(corpus(), out, tmp_path / "scores")
    before = (out / "documents.jsonl.gz").read_bytes()

    def broken():
        yield TextDocument("a", RIVER, "web")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        CurationConfig().run(broken(), out, tmp_path / "scores")
    assert (out / "documents.jsonl.gz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary leftovers
    with pytest.raises(RuntimeError):
        CurationConfig().run(broken(), tmp_path / "new", tmp_path / "scores")
    assert not (tmp_path / "new").exists()


def test_same_input_gives_byte_identical_output(tmp_path):
    for name in ("a", "b"):
        CurationConfig(filters=FILTERS).run(corpus(), tmp_path / name, tmp_path / "scores")
    for rel in ("documents.jsonl.gz", STATS_FILE, "scores/heuristics.parquet"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_sample_size_and_length_are_bounded(tmp_path):
    docs = [TextDocument(f"d{i}", f"tiny document number {i}", "web") for i in range(50)]
    cfg = CurationConfig(filters=["gopher_quality"], sample_size=3, sample_chars=10)
    stage = cfg.run(docs, tmp_path / "out", tmp_path / "s").report.stage("gopher_quality")
    assert stage.docs_removed == 50
    assert len(stage.samples) == 3
    assert all(len(s.text) == 10 for s in stage.samples)
    ids = [int(s.id[1:]) for s in stage.samples]
    assert ids == sorted(ids)  # in stream order


def test_reservoir_is_uniform_and_seeded():
    def sample(seed):
        reservoir = SampleReservoir(5, seed)
        for i in range(1000):
            reservoir.offer(i)
        return reservoir.items()

    assert sample(0) == sample(0) != sample(1)
    assert len(sample(0)) == 5 and max(sample(0)) > 100  # not just the first items
    firsts = [sample(seed)[0] for seed in range(200)]
    assert 140 < sum(firsts) / len(firsts) < 200  # the least of 5 of 1000 draws: about 166


def test_documents_round_trip_through_the_writer(tmp_path):
    docs = [TextDocument("é", "line one\nline two ✓", "src", {"k": [1, 2]})]
    with DocumentWriter(tmp_path / "d.jsonl.gz") as writer:
        for doc in docs:
            writer.write(doc)
    assert list(read_documents(tmp_path / "d.jsonl.gz")) == docs
    assert writer.count == 1 and len(writer.digest()) == 64


def test_inspect_rejects_a_directory_without_stats(tmp_path):
    with pytest.raises(ValueError, match="is not a curation output \\(no curation_stats.json\\)"):
        inspect(tmp_path)


def test_model_filters_chain_after_dedup(tmp_path):
    spam = tmp_path / "spam.jsonl"
    spam.write_text(
        "".join(json.dumps({"text": f"free prize {i}, click now!"}) + "\n" for i in range(9))
    )
    stdlib = {"name": "python_stdlib", "modules": ["json"], "split": "function"}
    cfg = validate(
        CurationConfig,
        {
            "perplexity": {
                "reference": {"sources": [stdlib], "d_model": 32, "n_heads": 2, "steps": 30},
                "band": [0, 75],
            },
            "classifier": {
                "positive": [stdlib],
                "negative": [{"name": "jsonl", "path": str(spam)}],
            },
        },
    )
    docs = [
        *corpus(),
        *(TextDocument(f"ad{i}", f"buy now, win a prize {i}!", "ads") for i in range(5)),
    ]
    report = cfg.run(docs, tmp_path / "out", tmp_path / "scores").report
    ppl, quality = report.stage("perplexity"), report.stage("classifier")
    assert [s.name for s in report.stages] == [
        "exact_dedup",
        "minhash_dedup",
        "perplexity",
        "classifier",
    ]
    # 12 in; dedup removes copy, and bread and bread2 (both nearly within spam): 9 remain,
    # of which a band of 75% keeps the 7 of rank < 6.75.
    assert (ppl.docs_in, ppl.docs_removed) == (9, 2)
    assert quality.docs_in == 7 == ppl.docs_out
    assert report.output.documents == quality.docs_out
    kept = list(read_documents(tmp_path / "out" / "documents.jsonl.gz"))
    assert all(
        {"perplexity", "perplexity_bucket", "quality_score"} <= d.metadata.keys() for d in kept
    )
    assert all(d.metadata["quality_score"] >= 0.5 for d in kept)
    assert sorted(p.name for p in (tmp_path / "out" / "scores").iterdir()) == [
        "classifier.parquet",
        "dedup.parquet",
        "perplexity.parquet",
    ]
