"""The `bios` world: synthetic biographies of people with known attributes.

Modelled on the setup of "Physics of Language Models, Part 3.1": every person has a unique full
name and six attributes (birth date, birth city, university, major, employer and the employer's
city, a function of the employer). The pretraining corpus holds biographies written from sentence
templates; the downstream tasks are questions about the attributes, split by person.

Token budget. Each person has ``rephrasings`` distinct biographies (each a fresh draw of
templates, and of sentence order when ``shuffle_sentences``), and each biography appears
``exposures`` times. A person therefore occurs ``rephrasings * exposures`` times and the corpus
holds ``num_people * rephrasings * exposures`` documents: keep that product fixed to compare at
equal budget (``rephrasings=1, exposures=5``: five copies of one fixed biography;
``rephrasings=5, exposures=1``: five different biographies).

Validation. ``validation_documents(count)`` writes one biography each for ``count`` further
people, from a stream of their own, with full names no corpus person has; each of their fields is
a random corpus person's, so validation text holds no word the corpus lacks. They appear in no QA split and in no corpus document, so
validation text shares neither a sentence nor a fact with pretraining, and the people, corpus and
QA items of a config stay the same however many validation people are drawn. A validation person
has one biography, shown once: a second copy or rephrasing in the same window would be predicted
from the first, which is memorisation, not the held-out loss.

Interleaving. The corpus is a sequence of rounds; each round holds one document of every person
(round ``j`` shows biography ``j % rephrasings``) in a seeded order. A seeded split of the people
into two halves keeps each person in the same half of every round, so two documents of the same
person are always more than ``num_people // 2`` documents apart: a context window never holds
all versions of one person, and any prefix of the corpus covers the people evenly.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from transferlab.config.registry import WORLDS
from transferlab.config.schemas import WorldConfig
from transferlab.worlds.base import World
from transferlab.worlds.bios_pii import PersonalData, PiiCorpus, add_personal_data, check_pii_knobs
from transferlab.worlds.bios_pools import (
    CITIES,
    EMPLOYER_CITY,
    EMPLOYERS,
    FEMALE_FIRST_NAMES,
    LAST_NAMES,
    MAJORS,
    MALE_FIRST_NAMES,
    MIDDLE_NAMES,
    MONTHS,
    UNIVERSITIES,
)
from transferlab.worlds.bios_reverse import ReverseQAItem, build_reverse_items
from transferlab.worlds.bios_templates import QUESTION_TEMPLATES, SENTENCE_TEMPLATES

SPLITS = ("train", "test")
ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "employer", "employer_city")

# A full name is an index into first x middle x last; first names list women before men.
_FIRST_NAMES = FEMALE_FIRST_NAMES + MALE_FIRST_NAMES
_NAMES_PER_FIRST = len(MIDDLE_NAMES) * len(LAST_NAMES)
NAME_CAPACITY = len(_FIRST_NAMES) * _NAMES_PER_FIRST
_POSSESSIVE = {"she": "her", "he": "his"}

_FIRST_BIRTH_DAY = date(1940, 1, 1).toordinal()
_LAST_BIRTH_DAY = date(1999, 12, 31).toordinal()


@WORLDS.register("bios")
class BiosConfig(WorldConfig):
    """Synthetic biographies of people with six known attributes, and questions about them.

    See the module docstring for how the knobs set the token budget."""

    name: Literal["bios"] = "bios"
    num_people: int = Field(default=500, ge=2)  # two, so both QA splits hold someone
    rephrasings: int = Field(default=1, ge=1, le=1000)  # distinct biographies per person
    exposures: int = Field(default=1, ge=1)  # copies of each biography in the corpus
    shuffle_sentences: bool = False  # each biography draws its sentence order (else fixed)
    full_name: bool = True  # False: the full name opens a biography, pronouns follow
    # share of the people whose questions are QA-test (the rest QA-train), at least one each
    qa_test_fraction: float = Field(default=0.5, gt=0, lt=1)
    # share of the documents that also state the person's phone and e-mail (worlds.bios_pii)
    pii_fraction: float = Field(default=0.0, ge=0, le=1)
    pii_filter: bool = False  # drop the documents that state personal data
    # Left out of the world's dict at these values, so every world keyed before them keeps
    # its key (data stages, runs and world directories): see ``WorldConfig.added_fields``.
    added_fields: ClassVar[dict[str, Any]] = {"pii_fraction": 0.0, "pii_filter": False}

    @model_validator(mode="after")
    def _names_suffice(self) -> BiosConfig:
        if self.num_people > NAME_CAPACITY:
            raise ValueError(
                f"num_people={self.num_people} exceeds the {NAME_CAPACITY} unique full names "
                "the name pools allow; lower num_people"
            )
        check_pii_knobs(self)
        return self

    def build(self) -> BiosWorld:
        return BiosWorld(self)


@dataclass(frozen=True)
class Person:
    """One row of the ground-truth table."""

    person_id: int
    first_name: str
    middle_name: str
    last_name: str
    pronoun: str  # "she" or "he"
    birth_date: str  # e.g. "March 4, 1983"
    birth_city: str
    university: str
    major: str
    employer: str
    employer_city: str
    split: str  # "train" or "test": the QA split of this person's questions; "validation": none

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.middle_name} {self.last_name}"

    def attributes(self) -> dict[str, str]:
        return {attribute: getattr(self, attribute) for attribute in ATTRIBUTES}

    def row(self) -> dict[str, Any]:
        """The person as a table row: every field plus ``full_name``, after ``person_id``."""
        fields_ = asdict(self)
        return {"person_id": fields_.pop("person_id"), "full_name": self.full_name, **fields_}


@dataclass(frozen=True)
class Document:
    """One biography in the corpus; ``id`` is its position in corpus order."""

    id: int
    person_id: int
    rephrasing: int  # which of the person's biographies this is, 0-based
    text: str
    name_spans: tuple[tuple[int, int], ...]  # [start, end) of every full-name mention


@dataclass(frozen=True)
class QAItem:
    """A question about one attribute of one person; ``template`` indexes QUESTION_TEMPLATES."""

    id: str
    person_id: int
    attribute: str
    question: str
    answer: str
    split: str
    template: int


class BiosWorld(World):
    """People, their biographies (the corpus), questions about them and the QA split."""

    def __init__(self, cfg: BiosConfig) -> None:
        self.config = cfg
        self.people: list[Person] = _sample_people(cfg)

    def corpus(self) -> list[Document]:
        """All documents in corpus order (people interleaved)."""
        return list(self._corpus)

    def documents(self) -> list[str]:
        return [doc.text for doc in self._corpus]

    def document_groups(self) -> list[int]:
        """The person of each corpus document: copies and rephrasings of one person share it."""
        return [doc.person_id for doc in self._corpus]

    def validation_documents(self, count: int) -> list[str]:
        """One biography of each of the first ``count`` validation people (see the module
        docstring); fewer when the name pools run out. The first ``k`` are the same for any
        ``count >= k``."""
        return _validation_biographies(self.config, self.people, count)

    def tokenizer_texts(self) -> list[str]:
        """Biographies plus every question with its answer (the QA tasks' prompts). With
        ``pii_filter`` the dropped biographies too: the tokenizer is the unfiltered world's."""
        biographies = [doc.text for doc in self._pii.documents] if self._pii else self.documents()
        return biographies + [f"{q.question} {q.answer}" for q in self._qa_items]

    def personal_data(self) -> dict[int, PersonalData]:
        """The phone and e-mail of each person whose data the corpus states (before
        ``pii_filter`` drops those documents), by person id; empty when ``pii_fraction`` is 0."""
        if self._pii is None:
            return {}
        return {person: self._pii.data[person] for person in self._pii.documents_per_person()}

    def qa_items(self) -> list[QAItem]:
        """One question per person and attribute, with a seeded choice of question template."""
        return list(self._qa_items)

    def reverse_qa_items(self) -> list[ReverseQAItem]:
        """The reverse question of each fact that some attributes identify (``bios_reverse``):
        who has these values? Each has the ``id`` of the forward ``QAItem`` of its fact."""
        return list(self._reverse_qa_items)

    def full_names(self) -> list[str]:
        """Every person's full name, in person order: the names the corpus shows, what reverse
        questions' distractors are drawn from."""
        return [person.full_name for person in self.people]

    def split(self) -> dict[str, list[int]]:
        """Person ids of the QA-train and QA-test people."""
        return {name: [p.person_id for p in self.people if p.split == name] for name in SPLITS}

    def attribute_values(self, attribute: str) -> list[str]:
        """Every value ``attribute`` can take, shown in the corpus or not."""
        return list(_value_pool(attribute))

    def corpus_values(self, attribute: str) -> list[str]:
        """The distinct values of ``attribute`` the corpus shows (every person's biography states
        each attribute), in order of first appearance among the people: what multiple-choice
        distractors are drawn from, so a distractor is never a value no text ever showed (a
        word-level tokenizer would read it as ``<unk>``) while the answer always is one."""
        _value_pool(attribute)  # an unknown attribute fails here, naming the valid ones
        return list(dict.fromkeys(getattr(person, attribute) for person in self.people))

    def entities(self) -> list[str]:
        """Every full name and every attribute value the corpus states, for objectives that
        keep entity names whole (``objectives.entities``); validation people's names are not
        among them."""
        names = [person.full_name for person in self.people]
        return names + [
            value for attribute in ATTRIBUTES for value in self.corpus_values(attribute)
        ]

    def write(self, out_dir: Path) -> None:
        # Imported here: pyarrow is slow to import and only writing needs it.
        import pyarrow as pa
        import pyarrow.parquet as pq

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_jsonl(out_dir / "corpus.jsonl", self._corpus_records())
        _write_jsonl(out_dir / "qa.jsonl", (asdict(item) for item in self._qa_items))
        _write_jsonl(out_dir / "reverse_qa.jsonl", (asdict(q) for q in self._reverse_qa_items))
        table = pa.Table.from_pylist(self._people_rows())
        pq.write_table(table, out_dir / "people.parquet")
        (out_dir / "split.json").write_text(json.dumps(self.split()))
        (out_dir / "world.json").write_text(json.dumps(self.config.to_dict(), indent=2))

    def _corpus_records(self) -> Iterable[dict[str, Any]]:
        """corpus.jsonl's records; with personal data each says whether it states some."""
        for doc in self._corpus:
            record = asdict(doc)
            if self._pii is not None:  # filtered: every kept document is clean
                record["has_pii"] = not self.config.pii_filter and doc.id in self._pii.marked
            yield record

    def _people_rows(self) -> list[dict[str, Any]]:
        """people.parquet's rows; with personal data also every person's phone and e-mail and
        how many documents state them (before ``pii_filter``)."""
        rows = [person.row() for person in self.people]
        if self._pii is None:
            return rows
        stated = self._pii.documents_per_person()
        return [
            {**row, **asdict(data), "pii_documents": stated[row["person_id"]]}
            for row, data in zip(rows, self._pii.data, strict=True)
        ]

    @cached_property
    def _pii(self) -> PiiCorpus | None:
        """The corpus with personal data, before any filter (None when ``pii_fraction`` is 0)."""
        if not self.config.pii_fraction:
            return None
        return add_personal_data(_build_corpus(self.people, self.config), self.people, self.config)

    @cached_property
    def _corpus(self) -> list[Document]:
        if self._pii is not None:
            return self._pii.kept(drop_marked=self.config.pii_filter)
        return _build_corpus(self.people, self.config)

    @cached_property
    def _qa_items(self) -> list[QAItem]:
        return _build_qa_items(self.people, _rng(self.config.seed, "qa"))

    @cached_property
    def _reverse_qa_items(self) -> list[ReverseQAItem]:
        return build_reverse_items(self.people)


def person_from_row(row: dict[str, Any]) -> Person:
    """Inverse of ``Person.row()`` (e.g. for a row read back from people.parquet)."""
    return Person(**{f.name: row[f.name] for f in fields(Person)})


@cache
def _value_pool(attribute: str) -> tuple[str, ...]:
    if attribute == "birth_date":
        days = range(_FIRST_BIRTH_DAY, _LAST_BIRTH_DAY + 1)
        return tuple(_format_date(date.fromordinal(day)) for day in days)
    if attribute == "employer_city":
        used = set(EMPLOYER_CITY.values())
        return tuple(city for city in CITIES if city in used)
    pools = {
        "birth_city": CITIES,
        "university": UNIVERSITIES,
        "major": MAJORS,
        "employer": EMPLOYERS,
    }
    if attribute not in pools:
        raise ValueError(f"unknown bios attribute {attribute!r}; expected one of {ATTRIBUTES}")
    return pools[attribute]


def _rng(seed: int, stream: str) -> random.Random:
    # One stream per purpose, so that e.g. changing `rephrasings` keeps the same people and split.
    return random.Random(f"bios:{seed}:{stream}")


def _format_date(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def _decode_name(index: int) -> tuple[str, str, str, str]:
    """(first, middle, last, pronoun) of name number ``index`` in [0, NAME_CAPACITY)."""
    first, rest = divmod(index, _NAMES_PER_FIRST)
    middle, last = divmod(rest, len(LAST_NAMES))
    pronoun = "she" if first < len(FEMALE_FIRST_NAMES) else "he"
    return _FIRST_NAMES[first], MIDDLE_NAMES[middle], LAST_NAMES[last], pronoun


def _test_people(cfg: BiosConfig) -> set[int]:
    ids = list(range(cfg.num_people))
    _rng(cfg.seed, "split").shuffle(ids)
    n_test = min(cfg.num_people - 1, max(1, round(cfg.num_people * cfg.qa_test_fraction)))
    return set(ids[:n_test])


def _draw_indices(rng: random.Random, sizes: tuple[int, ...]) -> list[int]:
    """Independent uniform indices into pools of ``sizes``, from a single draw.

    One uniform draw over the product space, decoded digit by digit (mixed radix), is the same
    distribution as one draw per pool at a fraction of the cost of many ``rng.choice`` calls.
    """
    code = rng.randrange(math.prod(sizes))
    indices = []
    for size in sizes:
        code, index = divmod(code, size)
        indices.append(index)
    return indices


_ATTRIBUTE_POOL_SIZES = (
    _LAST_BIRTH_DAY - _FIRST_BIRTH_DAY + 1,
    len(CITIES),
    len(UNIVERSITIES),
    len(MAJORS),
    len(EMPLOYERS),
)


def _sample_people(cfg: BiosConfig) -> list[Person]:
    rng = _rng(cfg.seed, "people")
    test_ids = _test_people(cfg)
    # Sampling name indices without replacement makes every full name unique.
    name_indices = rng.sample(range(NAME_CAPACITY), cfg.num_people)
    people = []
    for person_id, name_index in enumerate(name_indices):
        indices = _draw_indices(rng, _ATTRIBUTE_POOL_SIZES)
        split = "test" if person_id in test_ids else "train"
        people.append(_person(person_id, name_index, indices, split))
    return people


def _validation_biographies(cfg: BiosConfig, people: list[Person], count: int) -> list[str]:
    """Biographies of the first ``count`` validation people.

    Each field of a validation person (first, middle and last name; birth date, city,
    university, major, employer) is that of a corpus person drawn at random, independently per
    field: the combination is new, so no sentence or fact is shared with training, but every
    word is one the corpus holds. A word-level tokenizer (trained on the corpus) then reads
    validation text without ``<unk>``, which would make the validation loss quietly wrong. One
    stream, consumed person by person, makes the sequence prefix-stable; full names are drawn
    by rejection, so no two people share one (the draw stops when the names run out).
    """
    rng = _rng(cfg.seed, "validation")
    taken = {person.full_name for person in people}
    texts = []
    for person_id in range(len(people), len(people) + count):
        person = _recombined_person(person_id, people, taken, rng)
        if person is None:
            break
        taken.add(person.full_name)
        texts.append(_biography(person, rng, cfg)[0])
    return texts


def _recombined_person(
    person_id: int, people: list[Person], taken: set[str], rng: random.Random, tries: int = 1000
) -> Person | None:
    """A new person whose every field is some corpus person's, with a full name not in
    ``taken``; None when ``tries`` draws find no new name."""
    for _ in range(tries):
        first, middle, last = (rng.choice(people) for _ in range(3))
        if f"{first.first_name} {middle.middle_name} {last.last_name}" in taken:
            continue
        employer = rng.choice(people)
        return replace(
            first,
            person_id=person_id,
            middle_name=middle.middle_name,
            last_name=last.last_name,
            birth_date=rng.choice(people).birth_date,
            birth_city=rng.choice(people).birth_city,
            university=rng.choice(people).university,
            major=rng.choice(people).major,
            employer=employer.employer,
            employer_city=employer.employer_city,
            split="validation",
        )
    return None


def _person(person_id: int, name_index: int, indices: list[int], split: str) -> Person:
    """The person of name number ``name_index`` and attribute pool ``indices``."""
    first, middle, last, pronoun = _decode_name(name_index)
    day, city, university, major, employer = indices
    return Person(
        person_id=person_id,
        first_name=first,
        middle_name=middle,
        last_name=last,
        pronoun=pronoun,
        birth_date=_format_date(date.fromordinal(_FIRST_BIRTH_DAY + day)),
        birth_city=CITIES[city],
        university=UNIVERSITIES[university],
        major=MAJORS[major],
        employer=EMPLOYERS[employer],
        employer_city=EMPLOYER_CITY[EMPLOYERS[employer]],
        split=split,
    )


def _mentions(person: Person) -> tuple[dict[str, str], dict[str, str]]:
    """Fillers of ``{subject}`` and ``{possessive}``: (with the full name, with the pronoun)."""
    named = {"subject": person.full_name, "possessive": f"{person.full_name}'s"}
    pronoun = {
        "subject": person.pronoun.capitalize(),
        "possessive": _POSSESSIVE[person.pronoun].capitalize(),
    }
    return named, pronoun


_TEMPLATE_COUNTS = tuple(len(SENTENCE_TEMPLATES[attribute]) for attribute in ATTRIBUTES)


def _biography(
    person: Person, rng: random.Random, cfg: BiosConfig
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """One biography and the character spans of its full-name mentions."""
    choices = _draw_indices(rng, _TEMPLATE_COUNTS)
    order = list(range(len(ATTRIBUTES)))
    if cfg.shuffle_sentences:
        rng.shuffle(order)
    values = person.attributes()
    named, pronoun = _mentions(person)
    name_length = len(named["subject"])
    sentences: list[str] = []
    spans: list[tuple[int, int]] = []
    offset = 0
    for position, index in enumerate(order):
        attribute = ATTRIBUTES[index]
        template = SENTENCE_TEMPLATES[attribute][choices[index]]
        # Without full names the first sentence still names the person, whatever the order.
        uses_name = cfg.full_name or position == 0
        sentences.append(template.format(**(named if uses_name else pronoun), **values))
        if uses_name:  # every template opens with the name slot
            spans.append((offset, offset + name_length))
        offset += len(sentences[-1]) + 1  # +1: the joining space
    return " ".join(sentences), tuple(spans)


def _distinct_biographies(
    person: Person, rng: random.Random, cfg: BiosConfig
) -> list[tuple[str, tuple[tuple[int, int], ...]]]:
    biographies: dict[str, tuple[tuple[int, int], ...]] = {}
    # Redraw on a repeat; repeats are rare since over 6**6 distinct texts exist per person.
    while len(biographies) < cfg.rephrasings:
        text, spans = _biography(person, rng, cfg)
        biographies.setdefault(text, spans)
    return list(biographies.items())


def _interleaved_order(num_people: int, rounds: int, rng: random.Random) -> list[int]:
    """Person ids in corpus order: ``rounds`` rounds, each a seeded order of every person.

    Each person stays in the same half of every round, which keeps two occurrences of a person
    more than ``num_people // 2`` positions apart.
    """
    order = list(range(num_people))
    rng.shuffle(order)
    halves = (order[: num_people // 2], order[num_people // 2 :])
    sequence: list[int] = []
    for _ in range(rounds):
        for half in halves:
            rng.shuffle(half)
            sequence.extend(half)
    return sequence


def _build_corpus(people: list[Person], cfg: BiosConfig) -> list[Document]:
    text_rng = _rng(cfg.seed, "text")
    biographies = [_distinct_biographies(person, text_rng, cfg) for person in people]
    rounds = cfg.rephrasings * cfg.exposures
    order = _interleaved_order(len(people), rounds, _rng(cfg.seed, "order"))
    corpus = []
    for position, person_id in enumerate(order):
        rephrasing = (position // len(people)) % cfg.rephrasings
        text, spans = biographies[person_id][rephrasing]
        corpus.append(Document(position, person_id, rephrasing, text, spans))
    return corpus


def _build_qa_items(people: list[Person], rng: random.Random) -> list[QAItem]:
    items = []
    for person in people:
        for attribute, answer in person.attributes().items():
            templates = QUESTION_TEMPLATES[attribute]
            template = rng.randrange(len(templates))
            items.append(
                QAItem(
                    id=f"{person.person_id}:{attribute}",
                    person_id=person.person_id,
                    attribute=attribute,
                    question=templates[template].format(name=person.full_name),
                    answer=answer,
                    split=person.split,
                    template=template,
                )
            )
    return items


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with path.open("w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
