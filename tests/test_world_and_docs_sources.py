"""Two sources present on every machine: a synthetic world's corpus as text (``world_text``) and
the Python reference topics (``python_docs``), so a mixture can hold three unlike domains."""

from __future__ import annotations

import json
from pydoc_data.topics import topics

from transferlab.config import RunConfig, validate
from transferlab.data.prepare import prepare_data
from transferlab.data.sources import PythonDocsConfig, WorldTextConfig
from transferlab.worlds.bios import BiosConfig

WORLD = {"name": "bios", "num_people": 6, "exposures": 2, "rephrasings": 2}


def test_world_text_yields_the_world_corpus_in_order_with_its_groups():
    docs = list(WorldTextConfig(world=WORLD, label="bios").iter_documents())
    world = BiosConfig(**WORLD).build()
    assert [d.text for d in docs] == world.documents()
    assert [d.metadata["group"] for d in docs] == world.document_groups()
    assert [d.id for d in docs][:2] == ["doc-000000", "doc-000001"]
    assert {d.source for d in docs} == {"bios"}
    assert len({d.id for d in docs}) == len(docs) == 6 * 2 * 2


def test_python_docs_topics_and_paragraphs_cover_the_same_text():
    by_topic = list(PythonDocsConfig(split="topic").iter_documents())
    assert [d.id for d in by_topic] == sorted(topics)
    assert all(d.text == topics[d.id] for d in by_topic)
    paragraphs = list(PythonDocsConfig(min_chars=300).iter_documents())
    assert len({d.id for d in paragraphs}) == len(paragraphs) > len(by_topic)
    # Every paragraph document but a topic's last one is at least min_chars long, and joining
    # a topic's documents gives back its non-blank paragraphs in order.
    for topic in ("assert", "if"):
        mine = [d for d in paragraphs if d.metadata["topic"] == topic]
        assert all(len(d.text) >= 300 for d in mine[:-1])
        original = [p for p in topics[topic].split("\n\n") if p.strip()]
        joined = "\n\n".join(d.text for d in mine).split("\n\n")
        assert [p.strip() for p in joined if p.strip()] == [p.strip() for p in original]


def test_a_mixture_of_world_text_code_and_docs_prepares_three_domains(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = validate(
        RunConfig,
        {
            "tokenizer": {"kind": "bpe", "vocab_size": 512},
            "data": {
                "seq_len": 32,
                "sources": [
                    {"name": "world_text", "label": "bios", "world": WORLD},
                    {"name": "python_docs", "label": "docs", "limit": 40},
                    {"name": "python_stdlib", "label": "code", "modules": ["json"]},
                ],
                "mixture": {"weights": {"bios": 1, "docs": 1, "code": 1}, "tokens": 6000},
            },
        },
    )
    info = json.loads((prepare_data(cfg).root / "info.json").read_text())
    domains = {d["name"]: d for d in info["domains"]}
    assert sorted(domains) == ["bios", "code", "docs"]
    # A third of the budget each, in whole documents (drawn until the target is reached).
    assert {name: d["target_tokens"] for name, d in domains.items()} == dict.fromkeys(domains, 2000)
    assert all(d["sampled_tokens"] >= 2000 for d in domains.values())
