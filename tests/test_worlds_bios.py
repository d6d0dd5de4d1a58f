"""The `bios` world: unique people, templated biographies, interleaving, QA, split and files."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict
from itertools import pairwise

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from transferlab.artifacts import is_complete
from transferlab.config import WORLDS, ConfigError, RunConfig, validate
from transferlab.worlds import (
    ATTRIBUTES,
    BiosConfig,
    BiosWorld,
    Person,
    build_world,
    person_from_row,
)
from transferlab.worlds.bios import NAME_CAPACITY
from transferlab.worlds.bios_pools import (
    CITIES,
    EMPLOYER_CITY,
    EMPLOYERS,
    FEMALE_FIRST_NAMES,
    LAST_NAMES,
    MALE_FIRST_NAMES,
    MIDDLE_NAMES,
)
from transferlab.worlds.bios_templates import QUESTION_TEMPLATES, SENTENCE_TEMPLATES

NAME_WORDS = set(FEMALE_FIRST_NAMES + MALE_FIRST_NAMES + MIDDLE_NAMES + LAST_NAMES)


def world(**knobs) -> BiosWorld:
    return BiosConfig(**{"num_people": 60, **knobs}).build()


def sentences(text: str) -> list[str]:
    # Sentences end with "." and are joined by one space; no value contains ". ".
    return [s if s.endswith(".") else s + "." for s in text.split(". ")]


def sentence_attribute(sentence: str, person: Person) -> str:
    """Which attribute a biography sentence of ``person`` states (found by re-rendering)."""
    values = person.attributes()
    subjects = (person.full_name, person.pronoun.capitalize())
    possessives = (f"{person.full_name}'s", {"he": "His", "she": "Her"}[person.pronoun])
    matches = {
        attribute
        for attribute, templates in SENTENCE_TEMPLATES.items()
        for template in templates
        for subject, possessive in zip(subjects, possessives, strict=True)
        if template.format(subject=subject, possessive=possessive, **values) == sentence
    }
    assert len(matches) == 1, (sentence, matches)
    return matches.pop()


def docs_by_person(w: BiosWorld) -> dict[int, list]:
    grouped = defaultdict(list)
    for doc in w.corpus():
        grouped[doc.person_id].append(doc)
    return grouped


# ----------------------------------------------------------------------------- people and pools
def test_full_names_are_unique_and_name_words_are_used_nowhere_else():
    w = world(num_people=5000)
    assert len({p.full_name for p in w.people}) == 5000
    assert NAME_CAPACITY >= 100_000
    other_text = [v for a in ATTRIBUTES for v in w.attribute_values(a)]
    other_text += [t for ts in SENTENCE_TEMPLATES.values() for t in ts]
    other_text += [t for ts in QUESTION_TEMPLATES.values() for t in ts]
    other_words = {word for text in other_text for word in re.findall(r"\w+", text)}
    assert not NAME_WORDS & other_words


def test_pronoun_follows_the_first_name():
    for p in world().people:
        expected = "she" if p.first_name in FEMALE_FIRST_NAMES else "he"
        assert p.pronoun == expected


def test_employer_city_is_a_function_of_the_employer():
    people = world(num_people=2000).people
    city_of = defaultdict(set)
    for p in people:
        city_of[p.employer].add(p.employer_city)
        assert p.employer_city == EMPLOYER_CITY[p.employer]
    assert all(len(cities) == 1 for cities in city_of.values())
    assert set(EMPLOYER_CITY) == set(EMPLOYERS)
    assert set(EMPLOYER_CITY.values()) <= set(CITIES)


def test_attribute_values_hold_every_persons_value():
    w = world(num_people=500)
    pools = {a: set(w.attribute_values(a)) for a in ATTRIBUTES}
    for p in w.people:
        for attribute, value in p.attributes().items():
            assert value in pools[attribute]
    assert len(pools["birth_date"]) == 21915  # every day of 1940..1999
    assert "March 4, 1983" in pools["birth_date"]
    assert len(pools["employer"]) >= 200 and len(pools["birth_city"]) >= 100
    with pytest.raises(ValueError, match="unknown bios attribute 'age'"):
        w.attribute_values("age")


# ----------------------------------------------------------------------------- templates
def test_at_least_five_sentence_and_two_question_templates_per_attribute():
    assert set(SENTENCE_TEMPLATES) == set(QUESTION_TEMPLATES) == set(ATTRIBUTES)
    for attribute in ATTRIBUTES:
        templates = SENTENCE_TEMPLATES[attribute]
        assert len(set(templates)) == len(templates) >= 5
        for template in templates:
            assert template.startswith(("{subject} ", "{possessive} "))
            slots = set(re.findall(r"{(\w+)}", template)) - {"subject", "possessive"}
            assert slots == {attribute}
        questions = QUESTION_TEMPLATES[attribute]
        assert len(set(questions)) == len(questions) >= 2
        assert all(set(re.findall(r"{(\w+)}", q)) == {"name"} for q in questions)


# ----------------------------------------------------------------------------- biographies
def test_one_rephrasing_is_one_fixed_text_repeated_per_exposure():
    w = world(rephrasings=1, exposures=3)
    assert len(w.documents()) == 60 * 3
    for docs in docs_by_person(w).values():
        assert len(docs) == 3
        assert len({d.text for d in docs}) == 1


def test_rephrasings_are_distinct_texts_each_repeated_per_exposure():
    w = world(rephrasings=4, exposures=2)
    assert len(w.documents()) == 60 * 4 * 2
    for docs in docs_by_person(w).values():
        texts = Counter(d.text for d in docs)
        assert len(texts) == 4 and set(texts.values()) == {2}
        assert Counter(d.rephrasing for d in docs) == {0: 2, 1: 2, 2: 2, 3: 2}


def test_each_biography_states_every_attribute_once_with_its_true_value():
    for shuffle in (False, True):
        w = world(num_people=30, rephrasings=3, shuffle_sentences=shuffle)
        orders = set()
        for doc in w.corpus():
            person = w.people[doc.person_id]
            order = tuple(sentence_attribute(s, person) for s in sentences(doc.text))
            assert sorted(order) == sorted(ATTRIBUTES)
            orders.add(order)
        if shuffle:
            assert len(orders) > 10
        else:
            assert orders == {ATTRIBUTES}


def test_full_name_in_every_sentence_with_spans():
    w = world(num_people=20, rephrasings=2)
    for doc in w.corpus():
        name = w.people[doc.person_id].full_name
        parts = sentences(doc.text)
        assert all(s.startswith(name) for s in parts)
        assert len(doc.name_spans) == len(parts) == doc.text.count(name) == 6
        assert all(doc.text[start:end] == name for start, end in doc.name_spans)


def test_pronoun_after_the_first_sentence_even_when_shuffled():
    for shuffle in (False, True):
        w = world(num_people=20, rephrasings=3, full_name=False, shuffle_sentences=shuffle)
        for doc in w.corpus():
            person = w.people[doc.person_id]
            first, *rest = sentences(doc.text)
            assert first.startswith(person.full_name)
            openers = {"he": ("He ", "His "), "she": ("She ", "Her ")}[person.pronoun]
            assert all(s.startswith(openers) for s in rest)
            assert not NAME_WORDS & set(re.findall(r"\w+", " ".join(rest)))
            assert doc.name_spans == ((0, len(person.full_name)),)


def test_documents_of_a_person_are_spread_through_the_corpus():
    n = 50
    w = world(num_people=n, rephrasings=3, exposures=2)
    corpus = w.corpus()
    assert [d.id for d in corpus] == list(range(len(corpus)))
    for r in range(6):  # each round holds every person once
        assert {d.person_id for d in corpus[r * n : (r + 1) * n]} == set(range(n))
    for docs in docs_by_person(w).values():
        positions = [d.id for d in docs]
        gaps = [b - a for a, b in pairwise(positions)]
        assert min(gaps) > n // 2
    # Neighbours are not the same person, and the order is not the same in every round.
    assert all(a.person_id != b.person_id for a, b in pairwise(corpus))
    assert [d.person_id for d in corpus[:n]] != [d.person_id for d in corpus[n : 2 * n]]


# ----------------------------------------------------------------------------- QA and split
def test_every_qa_answer_is_the_true_value():
    w = world(num_people=100)
    items = w.qa_items()
    assert len(items) == 100 * len(ATTRIBUTES)
    assert len({q.id for q in items}) == len(items)
    assert {(q.person_id, q.attribute) for q in items} == {
        (p, a) for p in range(100) for a in ATTRIBUTES
    }
    for q in items:
        person = w.people[q.person_id]
        assert q.answer == getattr(person, q.attribute)
        template = QUESTION_TEMPLATES[q.attribute][q.template]
        assert q.question == template.format(name=person.full_name)
        assert q.split == person.split
    assert len({q.template for q in items}) == 3  # the question wording varies


def test_qa_split_sizes_and_disjointness():
    w = world(num_people=200, qa_test_fraction=0.3)
    split = w.split()
    assert len(split["test"]) == 60 and len(split["train"]) == 140
    assert set(split["train"]).isdisjoint(split["test"])
    assert set(split["train"]) | set(split["test"]) == set(range(200))
    assert [p.split for p in w.people].count("test") == 60
    tiny = world(num_people=2, qa_test_fraction=0.01).split()
    assert len(tiny["test"]) == len(tiny["train"]) == 1


# ----------------------------------------------------------------------------- determinism
def test_same_config_same_world_and_other_seed_another_world():
    a = world(rephrasings=2, shuffle_sentences=True, full_name=False, seed=7)
    b = world(rephrasings=2, shuffle_sentences=True, full_name=False, seed=7)
    c = world(rephrasings=2, shuffle_sentences=True, full_name=False, seed=8)
    assert a.documents() == b.documents()
    assert a.qa_items() == b.qa_items()
    assert a.people == b.people
    assert a.people != c.people
    assert a.documents() != c.documents()
    assert a.split() != c.split()


def test_text_knobs_keep_the_same_people_and_split():
    base = world(seed=3)
    other = world(seed=3, rephrasings=3, exposures=2, shuffle_sentences=True, full_name=False)
    assert base.people == other.people
    assert base.qa_items() == other.qa_items()


# ----------------------------------------------------------------------------- files
def test_build_world_writes_all_files_that_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = BiosConfig(num_people=40, rephrasings=2, seed=5)
    out = build_world(cfg, tmp_path / "world")
    w = cfg.build()
    assert out == tmp_path / "world" and is_complete(out)
    assert [p.name for p in tmp_path.iterdir()] == ["world"]  # no temp dir left behind

    corpus = [json.loads(line) for line in (out / "corpus.jsonl").read_text().splitlines()]
    assert [(d["id"], d["person_id"], d["text"]) for d in corpus] == [
        (d.id, d.person_id, d.text) for d in w.corpus()
    ]
    assert [tuple(map(tuple, d["name_spans"])) for d in corpus] == [
        d.name_spans for d in w.corpus()
    ]
    qa = [json.loads(line) for line in (out / "qa.jsonl").read_text().splitlines()]
    assert qa[0].keys() >= {"id", "person_id", "attribute", "question", "answer", "split"}
    assert [(q["id"], q["answer"], q["template"]) for q in qa] == [
        (q.id, q.answer, q.template) for q in w.qa_items()
    ]
    rows = pq.read_table(out / "people.parquet").to_pylist()
    assert [person_from_row(row) for row in rows] == w.people
    assert [row["full_name"] for row in rows] == [p.full_name for p in w.people]
    assert json.loads((out / "split.json").read_text()) == w.split()
    world_cfg = json.loads((out / "world.json").read_text())
    assert WORLDS.parse(world_cfg) == cfg


# ----------------------------------------------------------------------------- config
def test_registered_and_default_world_of_a_run():
    assert WORLDS.get("bios") is BiosConfig
    cfg = RunConfig()
    assert isinstance(cfg.world, BiosConfig)
    assert isinstance(cfg.world.build(), BiosWorld)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"num_people": 0}, "world.num_people: got 0; expected"),
        ({"rephrasings": 0}, "world.rephrasings: got 0"),
        ({"exposures": 0}, "world.exposures: got 0"),
        ({"qa_test_fraction": 0.0}, "world.qa_test_fraction: got 0.0"),
        ({"qa_test_fraction": 1.0}, "world.qa_test_fraction: got 1.0; expected"),
        ({"num_people": 10**6}, "exceeds the 480000 unique full names"),
        ({"people": 5}, "world.people: unknown field"),
    ],
)
def test_bad_knobs_fail_with_one_line(knobs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(RunConfig, {"world": {"name": "bios", **knobs}})
    with pytest.raises(ValidationError):
        BiosConfig(**knobs)


def test_tokenizer_texts_cover_questions_without_unknown_words():
    from transferlab.config import TokenizerConfig
    from transferlab.data.tokenizer import train_tokenizer

    world = BiosConfig(num_people=30).build()
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), world.tokenizer_texts())
    unk = tokenizer.token_to_id("<unk>")
    for item in world.qa_items():
        ids = tokenizer.encode(f"{item.question} {item.answer}")
        assert unk not in ids
        assert tokenizer.decode(ids) == f"{item.question} {item.answer}"


# ----------------------------------------------------------------------------- validation people
# sha256 (first 16 hex digits) of corpus, QA items, people and split, computed with the generator
# as it was before validation people existed (commit cbe1743): drawing them must change nothing.
UNCHANGED_WORLDS = [
    ({}, "eb829ce4a9ecb17b"),
    ({"exposures": 5, "rephrasings": 5}, "a948ed2c90d5c391"),
    ({"num_people": 100, "seed": 7}, "f907cf7015af58ec"),
    (
        {"num_people": 80, "rephrasings": 3, "shuffle_sentences": True, "full_name": False},
        "57270db63eb7fac9",
    ),
]


@pytest.mark.parametrize(("knobs", "digest"), UNCHANGED_WORLDS)
def test_people_corpus_and_qa_are_those_of_the_generator_before_validation_people(knobs, digest):
    w = BiosConfig(**knobs).build()
    w.validation_documents(300)  # drawing validation people first must not disturb anything
    blob = json.dumps(
        [
            [asdict(d) for d in w.corpus()],
            [asdict(q) for q in w.qa_items()],
            [p.row() for p in w.people],
            w.split(),
        ],
        sort_keys=True,
    )
    assert hashlib.sha256(blob.encode()).hexdigest()[:16] == digest


def _opening_name(text: str) -> str:
    """The full name a biography opens with (every first sentence names the person)."""
    return " ".join(text.split()[:3]).removesuffix("'s")


@pytest.mark.parametrize("knobs", [{}, {"shuffle_sentences": True, "full_name": False}])
def test_validation_people_are_new_unique_people_with_one_biography_each(knobs):
    w = world(**knobs)
    val = w.validation_documents(400)
    assert len(val) == 400 and w.validation_documents(150) == val[:150]  # prefix-stable
    assert world(**knobs).validation_documents(400) == val  # seeded
    assert world(**knobs, seed=1).validation_documents(50) != val[:50]
    names = [_opening_name(text) for text in val]
    assert len(set(names)) == 400
    assert not set(names) & {p.full_name for p in w.people}
    assert not set(val) & set(w.documents())
    # Each names its person and states six facts, like any corpus biography.
    assert all(len(re.findall(r"\.(?: |$)", text)) == len(ATTRIBUTES) for text in val)


def test_validation_people_do_not_depend_on_the_text_knobs_of_the_corpus():
    base = world(seed=4).validation_documents(30)
    repeated = world(seed=4, rephrasings=3, exposures=2).validation_documents(30)
    assert [_opening_name(t) for t in base] == [_opening_name(t) for t in repeated]


def test_document_groups_are_the_person_of_each_document():
    w = world(rephrasings=3, exposures=2)
    assert w.document_groups() == [doc.person_id for doc in w.corpus()]
    assert Counter(w.document_groups()) == {p.person_id: 6 for p in w.people}
