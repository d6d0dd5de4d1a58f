"""The bios world's reverse questions: pinned text, uniqueness, pairing with the forward items,
the words a word-level tokenizer knows, and the name-first biographies the reversal curse needs."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from transferlab.config import TokenizerConfig
from transferlab.data.tokenizer import train_tokenizer
from transferlab.evaluate.qa import unknown_id
from transferlab.worlds import BiosConfig, BiosWorld, Person
from transferlab.worlds.bios_reverse import (
    EXTRA_ATTRIBUTES,
    build_reverse_items,
    identifying_attributes,
    reverse_question,
)


@pytest.fixture(scope="module")
def world() -> BiosWorld:
    return BiosConfig(num_people=40, seed=0).build()


def _matches(people: list[Person], person: Person, attributes: tuple[str, ...]) -> int:
    return sum(all(getattr(p, a) == getattr(person, a) for a in attributes) for p in people)


def test_questions_of_a_seeded_world_are_pinned(world: BiosWorld) -> None:
    first = [(q.id, q.attributes, q.question, q.answer, q.split) for q in world.reverse_qa_items()]
    name = "Francis Logan Kingsley"
    assert first[:6] == [
        ("0:birth_date", ("birth_date",), "Who was born on April 4, 1948?", name, "train"),
        ("0:birth_city", ("birth_city",), "Who was born in Los Angeles?", name, "train"),
        ("0:university", ("university",), "Who studied at Pinecrest State University?", name, "train"),
        (
            "0:major",
            ("major", "birth_date"),
            "Who was born on April 4, 1948, majored in French?",
            name,
            "train",
        ),
        ("0:employer", ("employer",), "Who worked for Chariot Software?", name, "train"),
        ("0:employer_city", ("employer_city",), "Who worked in Venice?", name, "train"),
    ]  # fmt: skip


def test_every_question_identifies_its_person_and_each_added_attribute_narrows(world) -> None:
    people = world.people
    for item in world.reverse_qa_items():
        person = people[item.person_id]
        assert item.attributes[0] == item.attribute
        assert len(set(item.attributes)) == len(item.attributes)
        assert _matches(people, person, item.attributes) == 1
        for k in range(1, len(item.attributes)):  # every shorter prefix leaves more than one
            assert _matches(people, person, item.attributes[:k]) > 1
        for value in (getattr(person, a) for a in item.attributes):
            assert value in item.question


def test_reverse_items_pair_with_the_forward_items_of_their_fact(world) -> None:
    forward = {item.id: item for item in world.qa_items()}
    reverse = world.reverse_qa_items()
    assert len(reverse) == len(forward)  # 40 people: every fact has an identifying combination
    for item in reverse:
        fact = forward[item.id]
        assert (item.person_id, item.attribute, item.split) == (
            fact.person_id,
            fact.attribute,
            fact.split,
        )
        assert item.answer == world.people[item.person_id].full_name
    assert world.full_names() == [p.full_name for p in world.people]


def test_a_shared_value_takes_the_extra_attributes_in_order_skipping_what_does_not_narrow(
    world,
) -> None:
    a, b, c = world.people[:3]
    # b shares a's employer (and so its city) and birth date; c shares a's employer only.
    b = replace(b, employer=a.employer, employer_city=a.employer_city, birth_date=a.birth_date)
    c = replace(c, employer=a.employer, employer_city=a.employer_city)
    people = [a, b, c]
    # birth_date narrows {a, b, c} to {a, b}; a's university differs from b's: unique.
    assert identifying_attributes(a, "employer", people) == ("employer", "birth_date", "university")
    assert identifying_attributes(c, "employer", people) == ("employer", "birth_date")
    # employer_city adds nothing to employer, so it is never chosen after it.
    assert "employer_city" not in identifying_attributes(a, "employer", people)
    assert EXTRA_ATTRIBUTES[-1] == "employer_city"


def test_people_alike_in_every_attribute_get_no_reverse_question(world) -> None:
    a, b, c = world.people[:3]
    twin = replace(a, person_id=1, first_name=b.first_name, middle_name=b.middle_name)
    items = build_reverse_items([a, twin, replace(c, person_id=2)])
    assert {item.person_id for item in items} == {2}
    assert identifying_attributes(a, "birth_date", [a, twin]) is None


def test_phrases_join_the_stated_attributes(world) -> None:
    p = world.people[0]
    assert reverse_question(p, ("birth_city", "birth_date")) == (
        f"Who was born on {p.birth_date} in {p.birth_city}?"
    )
    assert reverse_question(p, ("major", "university", "employer")) == (
        f"Who studied {p.major} at {p.university}, worked for {p.employer}?"
    )


@pytest.mark.parametrize("num_people", [24, 40, 100])
def test_a_word_tokenizer_of_the_world_knows_every_reverse_question(num_people) -> None:
    world = BiosConfig(num_people=num_people, seed=0).build()
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), world.tokenizer_texts())
    unk = unknown_id(tokenizer)
    for item in world.reverse_qa_items():
        assert unk not in tokenizer.encode(item.question), item.question
        assert unk not in tokenizer.encode(" " + item.answer)


def test_name_first_biographies_never_show_an_attribute_before_the_name() -> None:
    """``full_name: false`` (what the reversal-curse recipe trains on): each biography names
    its person once, at its start, so no attribute of a person precedes that person's name."""
    world = BiosConfig(
        num_people=30, rephrasings=3, shuffle_sentences=True, full_name=False
    ).build()
    for doc in world.corpus():
        person = world.people[doc.person_id]
        assert doc.name_spans == ((0, len(person.full_name)),)
        assert doc.text.count(person.full_name) == 1


def test_write_holds_the_reverse_questions(world, tmp_path) -> None:
    world.write(tmp_path)
    lines = (tmp_path / "reverse_qa.jsonl").read_text().splitlines()
    expected = [json.loads(json.dumps(asdict(q))) for q in world.reverse_qa_items()]
    assert [json.loads(line) for line in lines] == expected
