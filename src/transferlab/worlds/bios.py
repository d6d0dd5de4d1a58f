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

Populations. ``populations`` splits the people into named groups, each with its own
``rephrasings``, ``shuffle_sentences``, ``full_name`` and exposures drawn per person from a
distribution (``worlds.bios_populations``); a person of a group occurs ``rephrasings *
exposures`` times, their own draw. Without ``populations`` the top-level knobs are the one
population of everyone, and the world is exactly the one before populations existed.

Validation. ``validation_documents(count)`` writes one biography each for ``count`` further
people, from a stream of their own, with full names no corpus person has; each of their fields is
a random corpus person's, so validation text holds no word the corpus lacks. They appear in no QA split and in no corpus document, so
validation text shares neither a sentence nor a fact with pretraining, and the people, corpus and
QA items of a config stay the same however many validation people are drawn. A validation person
has one biography, shown once: a second copy or rephrasing in the same window would be predicted
from the first, which is memorisation, not the held-out loss. With populations, validation people
join the populations in proportion to their sizes (after any ``k`` of them, each population holds
within one of its share of ``k``) and are written in their population's style (sentence order,
name or pronouns), so held-out text weighs every group as the people do, never one group alone.

Interleaving. The corpus is a sequence of rounds; each round holds one document of every person
(round ``j`` shows biography ``j % rephrasings``) in a seeded order. A seeded split of the people
into two halves keeps each person in the same half of every round, so two documents of the same
person are always more than ``num_people // 2`` documents apart: a context window never holds
all versions of one person, and any prefix of the corpus covers the people evenly.

With populations people have different numbers of documents, so rounds are uneven: there are as
many rounds as the most documents anyone has (``M``), and a person with ``d`` documents is in
``d`` of them, evenly spaced from a seeded offset (``bios_populations.spread_rounds``); their
``k``-th document shows biography ``k % rephrasings``. What holds instead: (1) the first ``R``
rounds hold within one of ``R * d / M`` of every person's documents, so a prefix of the corpus
covers everyone in proportion to their exposure; (2) a person's documents are in distinct
rounds and, with the fixed halves, two of them are separated by at least the other half's people
of one round in between (every person of the other half in the round where the first document
is, or where the second one is). With equal exposures this is the layout above.
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
from transferlab.worlds.bios_populations import (
    FixedExposures,
    PopulationConfig,
    apportion,
    check_populations,
    population_sizes,
    spread_rounds,
)
from transferlab.worlds.bios_reverse import ReverseQAItem, build_reverse_items
from transferlab.worlds.bios_templates import QUESTION_TEMPLATES, SENTENCE_TEMPLATES

SPLITS = ("train", "test")
# What ``BiosWorld.facets`` tells about a person of a world with populations.
FACETS = ("population", "exposures", "documents")
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
    # named groups of people, each with its own rephrasings, exposures (drawn per person),
    # shuffle_sentences and full_name; None: everyone is one population written as above
    populations: list[PopulationConfig] | None = None
    # share of the documents that also state the person's phone and e-mail (worlds.bios_pii)
    pii_fraction: float = Field(default=0.0, ge=0, le=1)
    pii_filter: bool = False  # drop the documents that state personal data
    # Left out of the world's dict at these values, so every world keyed before them keeps
    # its key (data stages, runs and world directories): see ``WorldConfig.added_fields``.
    added_fields: ClassVar[dict[str, Any]] = {
        "pii_fraction": 0.0,
        "pii_filter": False,
        "populations": None,
    }

    @model_validator(mode="after")
    def _names_suffice(self) -> BiosConfig:
        if self.num_people > NAME_CAPACITY:
            raise ValueError(
                f"num_people={self.num_people} exceeds the {NAME_CAPACITY} unique full names "
                "the name pools allow; lower num_people"
            )
        check_pii_knobs(self)
        return self

    @model_validator(mode="after")
    def _populations_split_the_people(self) -> BiosConfig:
        if self.populations is None:
            return self
        check_populations(self.populations, self.num_people)
        if self.pii_fraction:
            raise ValueError(
                "pii_fraction is not supported together with populations yet (personal data "
                "follows the top-level rephrasings and name style); leave one of them out"
            )
        for knob in _PER_POPULATION:
            if getattr(self, knob) != type(self).model_fields[knob].default:
                raise ValueError(
                    f"{knob} is set per population when populations are given; move "
                    f"{knob}={getattr(self, knob)} into each population"
                )
        return self

    def population_names(self) -> list[str]:
        """The names of the configured populations; none for a world without populations."""
        return [p.name for p in self.populations or ()]

    def population_list(self) -> list[PopulationConfig]:
        """The populations, or the one population of everyone the top-level knobs describe."""
        if self.populations is not None:
            return list(self.populations)
        everyone = PopulationConfig(
            name="all",
            count=self.num_people,
            rephrasings=self.rephrasings,
            exposures=FixedExposures(count=self.exposures),
            shuffle_sentences=self.shuffle_sentences,
            full_name=self.full_name,
        )
        return [everyone]

    def build(self) -> BiosWorld:
        return BiosWorld(self)


# The top-level knobs a population sets for itself.
_PER_POPULATION = ("rephrasings", "exposures", "shuffle_sentences", "full_name")


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
class Membership:
    """A person's population and their own draw of its exposures."""

    population: PopulationConfig
    exposures: int

    @property
    def documents(self) -> int:
        """How many corpus documents show the person."""
        return self.population.rephrasings * self.exposures


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
        self.populations = cfg.population_list()
        self.population_sizes = population_sizes(self.populations, cfg.num_people)
        self.people: list[Person] = _sample_people(cfg, self.population_sizes)
        # Person id -> their population and exposures (people are assigned in id order).
        self.memberships: list[Membership] = _draw_memberships(
            cfg.seed, self.populations, self.population_sizes
        )

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
        styles = apportion(self.population_sizes, count)
        return _validation_biographies(
            self.config.seed, self.people, [self.populations[i] for i in styles]
        )

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

    def population_names(self) -> list[str]:
        """The names of the configured populations; none for a world without populations."""
        return self.config.population_names()

    def facets(self, person_id: int) -> dict[str, str | int]:
        """What a task row may carry about a person beyond its example: their population, their
        exposures and their number of documents; none for a world without populations, whose
        people are all shown alike."""
        if self.config.populations is None:
            return {}
        membership = self.memberships[person_id]
        return {
            "population": membership.population.name,
            "exposures": membership.exposures,
            "documents": membership.documents,
        }

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
            facets = self.facets(doc.person_id)
            if facets:
                record["population"] = facets["population"]
            if self._pii is not None:  # filtered: every kept document is clean
                record["has_pii"] = not self.config.pii_filter and doc.id in self._pii.marked
            yield record

    def _people_rows(self) -> list[dict[str, Any]]:
        """people.parquet's rows; with personal data also every person's phone and e-mail and
        how many documents state them (before ``pii_filter``)."""
        rows = [person.row() | self.facets(person.person_id) for person in self.people]
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
        return add_personal_data(
            _build_corpus(self.people, self.memberships, self.config.seed), self.people, self.config
        )

    @cached_property
    def _corpus(self) -> list[Document]:
        if self._pii is not None:
            return self._pii.kept(drop_marked=self.config.pii_filter)
        return _build_corpus(self.people, self.memberships, self.config.seed)

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


def _test_people(cfg: BiosConfig, sizes: list[int]) -> set[int]:
    """The QA-test people: ``qa_test_fraction`` of each population (of ``sizes`` people, in id
    order), at least one and never all, by a seeded shuffle of each in turn."""
    rng = _rng(cfg.seed, "split")
    test: set[int] = set()
    start = 0
    for size in sizes:
        ids = list(range(start, start + size))
        rng.shuffle(ids)
        test.update(ids[: min(size - 1, max(1, round(size * cfg.qa_test_fraction)))])
        start += size
    return test


def _draw_memberships(
    seed: int, populations: list[PopulationConfig], sizes: list[int]
) -> list[Membership]:
    """Each person's population (in id order) and exposures, drawn per population from a stream
    named after it."""
    memberships = []
    for population, size in zip(populations, sizes, strict=True):
        rng = _rng(seed, f"exposures:{population.name}")
        memberships += [Membership(population, n) for n in population.exposures.draw(rng, size)]
    return memberships


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


def _sample_people(cfg: BiosConfig, sizes: list[int]) -> list[Person]:
    rng = _rng(cfg.seed, "people")
    test_ids = _test_people(cfg, sizes)
    # Sampling name indices without replacement makes every full name unique.
    name_indices = rng.sample(range(NAME_CAPACITY), cfg.num_people)
    people = []
    for person_id, name_index in enumerate(name_indices):
        indices = _draw_indices(rng, _ATTRIBUTE_POOL_SIZES)
        split = "test" if person_id in test_ids else "train"
        people.append(_person(person_id, name_index, indices, split))
    return people


def _validation_biographies(
    seed: int, people: list[Person], styles: list[PopulationConfig]
) -> list[str]:
    """Biographies of the first ``len(styles)`` validation people, each written in its style.

    Each field of a validation person (first, middle and last name; birth date, city,
    university, major, employer) is that of a corpus person drawn at random, independently per
    field: the combination is new, so no sentence or fact is shared with training, but every
    word is one the corpus holds. A word-level tokenizer (trained on the corpus) then reads
    validation text without ``<unk>``, which would make the validation loss quietly wrong. One
    stream, consumed person by person, makes the sequence prefix-stable; full names are drawn
    by rejection, so no two people share one (the draw stops when the names run out).
    """
    rng = _rng(seed, "validation")
    taken = {person.full_name for person in people}
    texts = []
    for person_id, style in enumerate(styles, start=len(people)):
        person = _recombined_person(person_id, people, taken, rng)
        if person is None:
            break
        taken.add(person.full_name)
        texts.append(_biography(person, rng, style)[0])
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
    person: Person, rng: random.Random, style: PopulationConfig
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """One biography, written as ``style`` says, and the character spans of its full-name
    mentions."""
    choices = _draw_indices(rng, _TEMPLATE_COUNTS)
    order = list(range(len(ATTRIBUTES)))
    if style.shuffle_sentences:
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
        uses_name = style.full_name or position == 0
        sentences.append(template.format(**(named if uses_name else pronoun), **values))
        if uses_name:  # every template opens with the name slot
            spans.append((offset, offset + name_length))
        offset += len(sentences[-1]) + 1  # +1: the joining space
    return " ".join(sentences), tuple(spans)


def _distinct_biographies(
    person: Person, rng: random.Random, population: PopulationConfig
) -> list[tuple[str, tuple[tuple[int, int], ...]]]:
    biographies: dict[str, tuple[tuple[int, int], ...]] = {}
    # Redraw on a repeat; repeats are rare since over 6**6 distinct texts exist per person.
    while len(biographies) < population.rephrasings:
        text, spans = _biography(person, rng, population)
        biographies.setdefault(text, spans)
    return list(biographies.items())


def _interleaved_order(num_people: int, members: list[set[int]], rng: random.Random) -> list[int]:
    """Person ids in corpus order: one round per set of ``members``, each a seeded order of
    the people in it.

    Each person stays in the same half of every round, which keeps two occurrences of a person
    apart by at least the other half's people of one round (more than ``num_people // 2`` when
    every round holds everyone). Each half is shuffled whole every round, then its members are
    taken (O(people x rounds)), so that with every person in every round the order is the one
    of the generator before populations existed.
    """
    order = list(range(num_people))
    rng.shuffle(order)
    halves = (order[: num_people // 2], order[num_people // 2 :])
    sequence: list[int] = []
    for round_members in members:
        for half in halves:
            rng.shuffle(half)
            sequence.extend(person for person in half if person in round_members)
    return sequence


def round_members(memberships: list[Membership], seed: int) -> list[set[int]]:
    """The people of each round of the corpus: as many rounds as anyone has documents, each
    person in as many as they have, evenly spaced from a seeded offset (``spread_rounds``)."""
    n_rounds = max(m.documents for m in memberships)
    offset_rng = _rng(seed, "rounds")
    members: list[set[int]] = [set() for _ in range(n_rounds)]
    for person_id, membership in enumerate(memberships):
        offset = offset_rng.randrange(n_rounds)
        for round_ in spread_rounds(membership.documents, n_rounds, offset):
            members[round_].add(person_id)
    return members


def _build_corpus(people: list[Person], memberships: list[Membership], seed: int) -> list[Document]:
    text_rng = _rng(seed, "text")
    biographies = [
        _distinct_biographies(person, text_rng, membership.population)
        for person, membership in zip(people, memberships, strict=True)
    ]
    members = round_members(memberships, seed)
    order = _interleaved_order(len(people), members, _rng(seed, "order"))
    shown = [0] * len(people)  # documents of each person so far
    corpus = []
    for position, person_id in enumerate(order):
        rephrasing = shown[person_id] % memberships[person_id].population.rephrasings
        shown[person_id] += 1
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
