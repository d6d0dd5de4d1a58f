"""Personal data in the bios world (``pii_fraction``, ``pii_filter``): which documents state it,
that nothing else moves, the files that record it, the filter, the keys at the default."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pyarrow.parquet as pq
import pytest

from transferlab.artifacts import content_key
from transferlab.config import ConfigError, RunConfig, validate
from transferlab.data.prepare import data_key
from transferlab.train.run_dir import config_key
from transferlab.worlds import BiosConfig, build_world
from transferlab.worlds.bios_pii import EMAIL_PATTERN, PHONE_PATTERN, PII_TEMPLATES

PII = {"num_people": 50, "exposures": 2, "rephrasings": 2, "pii_fraction": 0.3}


def test_default_knobs_leave_every_key_and_file_as_before(tmp_path):
    # Keys and corpus.jsonl's sha256 computed before the knobs existed (commit 3c6087b).
    cfg = validate(RunConfig, {})
    assert (data_key(cfg), config_key(cfg)) == ("527d39cb780f5d69", "70326e30c912ec0b")
    assert content_key(cfg.world.to_dict()) == "a7da732bd3d974f9"  # `transferlab world`'s dir
    assert "pii_fraction" not in cfg.world.to_dict() and "pii_filter" not in cfg.world.to_dict()
    knobs = {"num_people": 40, "rephrasings": 2, "exposures": 2, "shuffle_sentences": True}
    out = build_world(BiosConfig(**knobs), tmp_path / "w")
    digest = hashlib.sha256((out / "corpus.jsonl").read_bytes()).hexdigest()[:16]
    assert digest == "72babd00bb6c7c92"
    assert "phone" not in pq.read_table(out / "people.parquet").column_names


def test_a_set_knob_is_keyed():
    on = validate(RunConfig, {"world": {"name": "bios", "pii_fraction": 0.1}})
    off = validate(RunConfig, {})
    assert on.world.to_dict()["pii_fraction"] == 0.1
    assert config_key(on) != config_key(off) and data_key(on) != data_key(off)


def test_every_person_has_a_unique_phone_and_email_in_the_world_formats():
    w = BiosConfig(**{**PII, "num_people": 400, "pii_fraction": 0.75}).build()
    people = {p.person_id: p for p in w.people}
    data = w.personal_data()
    assert len({d.phone for d in data.values()}) == len({d.email for d in data.values()})
    assert len({d.phone for d in data.values()}) == len(data)
    for person_id, d in data.items():
        assert re.fullmatch(PHONE_PATTERN, d.phone) and re.fullmatch(
            r"\(\d{3}\) 555-01\d\d", d.phone
        )
        first, last = people[person_id].first_name.lower(), people[person_id].last_name.lower()
        assert re.fullmatch(EMAIL_PATTERN, d.email)
        assert re.fullmatch(rf"{first}\.{last}\.\d\d@example\.(com|org|net)", d.email)


def test_marked_documents_are_the_clean_ones_plus_one_sentence_with_the_persons_data():
    w, clean = BiosConfig(**PII).build(), BiosConfig(**{**PII, "pii_fraction": 0}).build()
    data = w.personal_data()
    marked = [doc for doc in w.corpus() if doc.text != clean.corpus()[doc.id].text]
    assert len(marked) == round(0.3 * len(clean.corpus())) == 60
    for doc in marked:
        before = clean.corpus()[doc.id]
        assert doc.text.startswith(before.text + " ") and doc.person_id == before.person_id
        sentence = doc.text[len(before.text) + 1 :]
        person = w.people[doc.person_id]
        fills = {"subject": person.full_name, "possessive": f"{person.full_name}'s"}
        fills |= {"phone": data[doc.person_id].phone, "email": data[doc.person_id].email}
        assert sentence in {t.format(**fills) for t in PII_TEMPLATES}
        start = len(before.text) + 1
        assert doc.name_spans == (*before.name_spans, (start, start + len(person.full_name)))
    # Whose data is stated: exactly the people with a marked document, each keeping a clean one.
    per_person = Counter(doc.person_id for doc in marked)
    assert set(data) == set(per_person) and max(per_person.values()) == 3  # 4 documents each


def test_personal_data_moves_nothing_else():
    w, clean = BiosConfig(**PII).build(), BiosConfig(**{**PII, "pii_fraction": 0}).build()
    assert w.people == clean.people and w.qa_items() == clean.qa_items()
    assert w.split() == clean.split()
    assert w.validation_documents(30) == clean.validation_documents(30)  # clean text
    assert not any(re.search(PHONE_PATTERN, text) for text in w.validation_documents(30))
    assert [d.person_id for d in w.corpus()] == [d.person_id for d in clean.corpus()]


def test_pronoun_worlds_state_it_with_the_pronoun():
    w = BiosConfig(**{**PII, "full_name": False}).build()
    clean = BiosConfig(**{**PII, "full_name": False, "pii_fraction": 0}).build()
    openings = {"she": ("She", "Her"), "he": ("He", "His")}
    for doc, before in zip(w.corpus(), clean.corpus(), strict=True):
        if doc.text != before.text:
            sentence = doc.text[len(before.text) + 1 :]
            assert sentence.split()[0] in openings[w.people[doc.person_id].pronoun]
            assert doc.name_spans == before.name_spans  # no name, no span


def test_one_document_per_person_may_mark_it():
    w = BiosConfig(num_people=40, pii_fraction=1.0).build()
    assert len(w.personal_data()) == 40
    assert all(re.search(PHONE_PATTERN, text) for text in w.documents())


def test_the_filter_drops_exactly_the_marked_documents_and_keeps_the_tokenizer_texts():
    plain, filtered = BiosConfig(**PII).build(), BiosConfig(**{**PII, "pii_filter": True}).build()
    kept = [doc for doc in plain.corpus() if not re.search(PHONE_PATTERN, doc.text)]
    assert filtered.documents() == [doc.text for doc in kept]
    assert [doc.id for doc in filtered.corpus()] == list(range(len(kept)))
    assert {doc.person_id for doc in filtered.corpus()} == set(range(50))  # every fact kept
    assert filtered.tokenizer_texts() == plain.tokenizer_texts()
    assert filtered.personal_data() == plain.personal_data()
    assert filtered.document_groups() == [doc.person_id for doc in kept]


def test_files_record_whose_data_and_which_documents(tmp_path):
    for knobs, name in ((PII, "plain"), ({**PII, "pii_filter": True}, "filtered")):
        cfg = BiosConfig(**knobs)
        out = build_world(cfg, tmp_path / name)
        w = cfg.build()
        records = [json.loads(line) for line in (out / "corpus.jsonl").read_text().splitlines()]
        assert [r["has_pii"] for r in records] == [
            bool(re.search(PHONE_PATTERN, doc.text)) for doc in w.corpus()
        ]
        assert sum(r["has_pii"] for r in records) == (0 if cfg.pii_filter else 60)
        rows = pq.read_table(out / "people.parquet").to_pylist()
        stated = {r["person_id"]: r for r in rows if r["pii_documents"]}
        assert {pid: (r["phone"], r["email"]) for pid, r in stated.items()} == {
            pid: (d.phone, d.email) for pid, d in w.personal_data().items()
        }
        assert sum(r["pii_documents"] for r in rows) == 60  # before the filter, in both
        assert all(r["phone"] and r["email"] for r in rows)  # everyone has data, stated or not


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"pii_fraction": 1.5}, "world.pii_fraction: got 1.5; expected"),
        (
            {"exposures": 2, "pii_fraction": 0.6},
            "pii_fraction=0.6 exceeds 0.5, the share that leaves each person a document "
            "without personal data (2 documents per person); lower pii_fraction or raise",
        ),
        ({"pii_filter": True}, "pii_filter drops the documents with personal data, but"),
        ({"pii_filter": True, "pii_fraction": 0.2}, "pii_filter with one document per person"),
    ],
)
def test_bad_pii_knobs_fail_with_one_line(knobs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(RunConfig, {"world": {"name": "bios", **knobs}})
