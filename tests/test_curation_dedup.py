"""Exact and MinHash deduplication."""

from transferlab.curation import (
    CurationConfig,
    DedupConfig,
    ExactDeduplicator,
    MinHashConfig,
    NearDuplicateDetector,
    normalize_text,
)
from transferlab.curation.dedup import word_shingles
from transferlab.data.sources import TextDocument

STORY = (
    "The history of the river valley is long and varied. Farmers settled along the banks "
    "and built small villages with stone houses. Over the centuries, the villages grew into "
    "towns, and the towns became a city that traded with the coast. Merchants brought salt, "
    "cloth and iron, and they took grain and wool back to the sea. Today the valley is known "
    "for its orchards and for the old bridge that still carries traffic across the water. "
    "Visitors come in the spring to see the blossoms and to walk the paths by the river."
)
OTHER = (
    "A compiler translates source code into machine instructions in several passes. The "
    "parser builds a syntax tree, the checker assigns types to every expression, and the "
    "optimizer rewrites the program so that it runs faster while computing the same results. "
    "Finally the code generator chooses registers and emits instructions for the target."
)
NEAR = STORY.replace("stone", "brick").replace("salt", "sugar")


def doc(doc_id, text, source="web"):
    return TextDocument(doc_id, text, source)


def test_normalization_ignores_case_and_whitespace_only():
    assert normalize_text("  Hello,\n\tWORLD  again ") == "hello, world again"
    assert normalize_text("ﬁne") == "fine"  # NFKC folds the ligature


def test_exact_dedup_names_the_first_copy_across_sources():
    dedup = ExactDeduplicator()
    assert dedup.check(doc("a", STORY)) is None
    assert dedup.check(doc("b", OTHER)) is None
    copy = dedup.check(doc("c", "  " + STORY.upper().replace(" ", "\n"), source="books"))
    assert (copy.source, copy.id, copy.similarity) == ("web", "a", 1.0)
    assert dedup.check(doc("d", STORY + " One more sentence.")) is None


def test_shingles_are_word_ngrams_of_the_normalized_text():
    assert word_shingles("A b  C d", 3) == {"a b c", "b c d"}
    assert word_shingles("Too short", 5) == {"too short"}


def test_minhash_removes_a_near_duplicate_and_keeps_distinct_documents():
    detector = NearDuplicateDetector(MinHashConfig())
    assert detector.check(doc("story", STORY)) is None
    assert detector.check(doc("other", OTHER)) is None
    found = detector.check(doc("near", NEAR))
    assert (found.source, found.id) == ("web", "story")
    assert 0.7 <= found.similarity < 1.0
    assert detector.check(doc("edited", STORY.replace("river", "lake"))) is not None


def test_minhash_threshold_decides_what_is_near():
    detector = NearDuplicateDetector(MinHashConfig(threshold=0.95))
    assert detector.check(doc("story", STORY)) is None
    assert detector.check(doc("near", NEAR)) is None


def test_minhash_is_deterministic():
    def similarity():
        detector = NearDuplicateDetector(MinHashConfig(num_perm=64, seed=7))
        detector.check(doc("story", STORY))
        return detector.check(doc("near", NEAR)).similarity

    assert similarity() == similarity()


def test_pipeline_dedup_counts_and_side_file(tmp_path):
    import pyarrow.parquet as pq

    docs = [
        doc("story", STORY),
        doc("copy", STORY.lower()),
        doc("other", OTHER),
        doc("near", NEAR),
        doc("copy2", STORY),
    ]
    result = CurationConfig().run(docs, tmp_path / "out", scores_dir=tmp_path / "scores")
    assert [d.id for d in result.documents()] == ["story", "other"]
    exact, near = result.report.stage("exact_dedup"), result.report.stage("minhash_dedup")
    assert (exact.docs_in, exact.docs_removed, near.docs_in, near.docs_removed) == (5, 2, 3, 1)
    assert exact.tokens_removed == 2 * len(STORY.split())
    assert [s.duplicate_of for s in exact.samples] == ["web/story", "web/story"]
    rows = pq.read_table(tmp_path / "out" / "scores" / "dedup.parquet").to_pylist()
    assert [(r["id"], r["method"], r["duplicate_of_id"]) for r in rows] == [
        ("copy", "exact_dedup", "story"),
        ("near", "minhash_dedup", "story"),
        ("copy2", "exact_dedup", "story"),
    ]


def test_dedup_can_be_turned_off(tmp_path):
    cfg = CurationConfig(dedup=DedupConfig(exact=False, minhash=None))
    result = cfg.run([doc("a", STORY), doc("b", STORY)], tmp_path / "out", tmp_path / "s")
    assert [d.id for d in result.documents()] == ["a", "b"]
    assert result.report.stages == []
    assert not (tmp_path / "out" / "scores" / "dedup.parquet").exists()
