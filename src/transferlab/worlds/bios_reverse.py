"""Reverse questions of the `bios` world: from attributes to the person.

A forward question (``QAItem``) asks for an attribute of a named person ("When was Ada Lee Moss
born?"); its reverse question asks for the person who has that attribute value ("Who was born on
March 4, 1983?"), answered by the full name. A fact is one (person, attribute); the reverse item
of a fact has the forward item's ``id`` (``"<person_id>:<attribute>"``), so the two directions
of a fact pair by id.

A question must identify its person in the world. The fact's own value alone often does not
(many people work for one employer), so further attributes of the person are added, in the order
``EXTRA_ATTRIBUTES`` and only when they narrow down the people who match, until one person is
left; ``attributes`` records them, the fact's own first. A fact that even all six attributes
cannot single out (two people alike in all of them) gets no reverse question.

The wording reuses the biographies' own phrases ("was born on", "studied ... at", "worked for"),
joined by commas, and no word of its own beyond the forward questions' "Who": a word-level
tokenizer trained on the corpus reads a reverse question without ``<unk>`` once the corpus shows
every sentence template, which each biography draws at random (a world of a few dozen people
does; a task refuses a question with an unknown word in one line). Reverse questions are not
tokenizer text (``tokenizer_texts``), so worlds keep the tokenizers they had.

The reversal curse needs biographies that always put the name first: every sentence template
opens with the name (or a pronoun), so the corpus never shows an attribute before the name of its
person, except that with ``full_name: true`` each later sentence's name follows the previous
sentence's attribute. ``full_name: false`` names the person only at the start of a biography.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # bios imports this module to build its reverse questions
    from transferlab.worlds.bios import Person

# The attributes added, in this order, when a fact's value is shared: the birth date is almost
# unique by itself, the employer's city is a function of the employer and comes last.
EXTRA_ATTRIBUTES = ("birth_date", "university", "employer", "birth_city", "major", "employer_city")

# How a question states a set of attributes: the first phrase whose attributes are all among
# those still unstated is used, until none are left. Two attributes may share a phrase.
PHRASES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("birth_date", "birth_city"), "was born on {birth_date} in {birth_city}"),
    (("birth_date",), "was born on {birth_date}"),
    (("birth_city",), "was born in {birth_city}"),
    (("major", "university"), "studied {major} at {university}"),
    (("university",), "studied at {university}"),
    (("major",), "majored in {major}"),
    (("employer",), "worked for {employer}"),
    (("employer_city",), "worked in {employer_city}"),
)


@dataclass(frozen=True)
class ReverseQAItem:
    """The reverse question of one fact: who has these attribute values? ``id`` is the fact's
    (that of the forward ``QAItem`` about ``person_id`` and ``attribute``)."""

    id: str
    person_id: int
    attribute: str  # the fact's attribute, the one its forward question asks about
    attributes: tuple[str, ...]  # every attribute the question states, ``attribute`` first
    question: str
    answer: str  # the person's full name
    split: str


def reverse_question(person: Person, attributes: tuple[str, ...]) -> str:
    """ "Who <phrases>?" stating ``person``'s values of ``attributes``, in ``PHRASES`` order."""
    values = person.attributes()
    unstated = set(attributes)
    phrases = []
    for stated, template in PHRASES:
        if unstated.issuperset(stated):
            phrases.append(template.format(**values))
            unstated.difference_update(stated)
    return f"Who {', '.join(phrases)}?"


def identifying_attributes(
    person: Person, attribute: str, people: list[Person]
) -> tuple[str, ...] | None:
    """``attribute`` plus the fewest ``EXTRA_ATTRIBUTES`` (in order, each one narrowing the
    match) after which ``person`` is the only one of ``people`` with those values; None when
    no combination singles the person out."""
    chosen = (attribute,)
    matches = _matching(person, chosen, people)
    for extra in EXTRA_ATTRIBUTES:
        if len(matches) == 1:
            break
        if extra in chosen:
            continue
        narrower = _matching(person, (*chosen, extra), matches)
        if len(narrower) < len(matches):
            chosen, matches = (*chosen, extra), narrower
    return chosen if len(matches) == 1 else None


def build_reverse_items(people: list[Person]) -> list[ReverseQAItem]:
    """One reverse question per person and attribute (in the order of the forward items),
    skipping the facts no attribute combination identifies."""
    by_value = _people_by_value(people)
    items = []
    for person in people:
        for attribute, value in person.attributes().items():
            sharing = by_value[attribute, value]
            attributes = identifying_attributes(person, attribute, sharing)
            if attributes is None:
                continue
            items.append(
                ReverseQAItem(
                    id=f"{person.person_id}:{attribute}",
                    person_id=person.person_id,
                    attribute=attribute,
                    attributes=attributes,
                    question=reverse_question(person, attributes),
                    answer=person.full_name,
                    split=person.split,
                )
            )
    return items


def _people_by_value(people: list[Person]) -> dict[tuple[str, str], list[Person]]:
    """(attribute, value) -> the people with that value: the candidates a fact starts from."""
    index: dict[tuple[str, str], list[Person]] = defaultdict(list)
    for person in people:
        for attribute, value in person.attributes().items():
            index[attribute, value].append(person)
    return index


def _matching(person: Person, attributes: tuple[str, ...], people: list[Person]) -> list[Person]:
    return [
        other
        for other in people
        if all(getattr(other, a) == getattr(person, a) for a in attributes)
    ]
