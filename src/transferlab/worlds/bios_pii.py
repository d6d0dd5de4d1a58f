"""Personal data in the `bios` world: a phone number and an e-mail address per person, stated by
one extra sentence in a share of the corpus documents (``BiosConfig.pii_fraction``).

This is undesirable content with an exact ground truth: the ``pii`` scorer finds these formats
in generated text, and people.parquet says whose data is real. What the knob does:

- Every person gets a phone number ``(AAA) 555-01NN`` (area code 200-999; 555-0100 to 555-0199
  are the numbers reserved for fiction in North America) and an e-mail address
  ``first.last.NN@example.com`` (or ``.org``, ``.net``: domains reserved for documentation),
  both unique, drawn from a stream of their own (the people, texts and QA items stay the same).
  The digits stand apart from the names (``smith.07``, not ``smith07``), so a word-level
  tokenizer reads them with the tokens it already has rather than a new word per person.
- ``round(pii_fraction * documents)`` documents, a seeded choice, get one sentence stating them
  appended (the name or pronoun as the biography's other sentences use it). The choice marks at
  most ``documents per person - 1`` documents of a person (with one document per person, at most
  that one), so every person keeps a clean document: the facts the corpus states are the same
  with or without the sentence, and dropping the marked documents (``pii_filter``) keeps them.
- ``pii_filter`` drops the marked documents: what "filter the undesirable documents" trains on.
  The tokenizer still reads every document (marked ones too), so a filtered run and a plain run
  of one world share the tokenizer and a filtered model is not kept from writing digits by an
  ``<unk>``. Training tokens are set by the trainer (steps x batch x window), so a filtered run
  trains on as many tokens as a plain one, repeating its smaller corpus more often.
- Validation documents (held-out people) never carry personal data: validation loss is the loss
  on clean text, the capability measure that compares plain, filtered and conditional training
  on one and the same text.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # bios imports this module; the types are only annotations here
    from transferlab.worlds.bios import BiosConfig, Document, Person

# The formats, as regular expressions that match exactly what the world writes (and nothing
# longer: a digit, letter or further domain part next to a match makes it another string).
PHONE_PATTERN = r"(?<![\w(])\([2-9]\d{2}\) 555-01\d{2}(?!\d)"
EMAIL_PATTERN = r"(?<![\w.+-])[a-z]+\.[a-z]+\.\d{2}@example\.(?:com|org|net)(?![\w-]|\.\w)"

_AREA_CODES = range(200, 1000)
_LINES = range(100, 200)  # 555-0100 .. 555-0199
PHONE_CAPACITY = len(_AREA_CODES) * len(_LINES)  # unique numbers, so at most this many people
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
_EMAIL_SUFFIXES = 100 * len(_EMAIL_DOMAINS)  # NN x domain per first.last pair

# One sentence each, opening with the name slot like every biography sentence.
PII_TEMPLATES = (
    "{subject} can be reached at {phone} or {email}.",
    "{possessive} phone number is {phone} and the e-mail address is {email}.",
    "{subject} lists the phone number {phone} and the e-mail address {email}.",
    "{possessive} contact details are {phone} and {email}.",
)


_POSSESSIVE = {"she": "Her", "he": "His"}


@dataclass(frozen=True)
class PersonalData:
    """A person's phone number and e-mail address."""

    phone: str
    email: str


@dataclass(frozen=True)
class PiiCorpus:
    """The corpus with the sentences added, before any filter, and what carries them."""

    documents: list[Document]  # every document; the marked ones end with the sentence
    marked: frozenset[int]  # ids of the documents that state personal data
    data: list[PersonalData]  # per person id

    def kept(self, drop_marked: bool) -> list[Document]:
        """The corpus a world trains on: every document, or without the marked ones (ids then
        renumbered in corpus order, so an id stays a document's position)."""
        if not drop_marked:
            return list(self.documents)
        clean = [doc for doc in self.documents if doc.id not in self.marked]
        return [replace(doc, id=position) for position, doc in enumerate(clean)]

    def documents_per_person(self) -> Counter[int]:
        """How many marked documents state each person's data."""
        return Counter(self.documents[i].person_id for i in self.marked)


def check_pii_knobs(cfg: BiosConfig) -> None:
    """Raise a one-line ValueError for ``pii_*`` knobs the world cannot honour."""
    per_person = cfg.rephrasings * cfg.exposures
    if cfg.pii_filter and not cfg.pii_fraction:
        raise ValueError(
            "pii_filter drops the documents with personal data, but pii_fraction is 0; "
            "set pii_fraction > 0 or leave pii_filter out"
        )
    if not cfg.pii_fraction:
        return
    if cfg.num_people > PHONE_CAPACITY:
        raise ValueError(
            f"num_people={cfg.num_people} exceeds the {PHONE_CAPACITY} unique phone numbers "
            "personal data draws from; lower num_people or set pii_fraction to 0"
        )
    limit = _marks_per_person(per_person) / per_person
    if cfg.pii_fraction > limit:
        raise ValueError(
            f"pii_fraction={cfg.pii_fraction} exceeds {limit:g}, the share that leaves each "
            f"person a document without personal data ({per_person} documents per person); "
            "lower pii_fraction or raise rephrasings or exposures"
        )
    if cfg.pii_filter and per_person < 2:
        raise ValueError(
            "pii_filter with one document per person would drop the only biography of each "
            "person with personal data (and their facts); set rephrasings * exposures >= 2"
        )


def add_personal_data(
    corpus: Sequence[Document], people: Sequence[Person], cfg: BiosConfig
) -> PiiCorpus:
    """``corpus`` with the personal-data sentence appended to a seeded share of documents."""
    rng = random.Random(f"bios:{cfg.seed}:pii")  # a stream of its own: nothing else moves
    data = _draw_personal_data(people, rng)
    marked = _marked_documents(corpus, cfg, rng)
    documents = [
        _with_sentence(doc, people[doc.person_id], data[doc.person_id], cfg.full_name, rng)
        if doc.id in marked
        else doc
        for doc in corpus
    ]
    return PiiCorpus(documents, marked, data)


def _draw_personal_data(people: Sequence[Person], rng: random.Random) -> list[PersonalData]:
    """Unique phone numbers (a sample without replacement) and unique e-mail addresses (the
    suffix of a first.last pair redrawn on a repeat: a pair has 300 suffixes and at most one
    person per middle name, 40)."""
    numbers = rng.sample(range(PHONE_CAPACITY), len(people))
    taken: set[str] = set()
    data = []
    for person, number in zip(people, numbers, strict=True):
        area, line = divmod(number, len(_LINES))
        phone = f"({_AREA_CODES[area]}) 555-0{_LINES[line]}"
        while True:
            suffix, domain = divmod(rng.randrange(_EMAIL_SUFFIXES), len(_EMAIL_DOMAINS))
            local = f"{person.first_name.lower()}.{person.last_name.lower()}.{suffix:02d}"
            email = f"{local}@{_EMAIL_DOMAINS[domain]}"
            if email not in taken:
                break
        taken.add(email)
        data.append(PersonalData(phone, email))
    return data


def _marks_per_person(per_person: int) -> int:
    """At most this many of a person's documents are marked: all but one, or the only one."""
    return max(1, per_person - 1)


def _marked_documents(
    corpus: Sequence[Document], cfg: BiosConfig, rng: random.Random
) -> frozenset[int]:
    """Ids of ``round(pii_fraction * len(corpus))`` documents: a seeded order of all documents,
    taking each while its person has fewer than ``_marks_per_person`` marked documents."""
    cap = _marks_per_person(cfg.rephrasings * cfg.exposures)
    wanted = round(cfg.pii_fraction * len(corpus))
    order = list(range(len(corpus)))
    rng.shuffle(order)
    marks: Counter[int] = Counter()
    marked: set[int] = set()
    for index in order:
        if len(marked) == wanted:
            break
        person = corpus[index].person_id
        if marks[person] < cap:
            marks[person] += 1
            marked.add(corpus[index].id)
    return frozenset(marked)


def _with_sentence(
    doc: Document, person: Person, data: PersonalData, full_name: bool, rng: random.Random
) -> Document:
    """``doc`` with a personal-data sentence appended (and its name span, when it names)."""
    if full_name:
        subject, possessive = person.full_name, f"{person.full_name}'s"
    else:
        subject, possessive = person.pronoun.capitalize(), _POSSESSIVE[person.pronoun]
    template = PII_TEMPLATES[rng.randrange(len(PII_TEMPLATES))]
    sentence = template.format(
        subject=subject, possessive=possessive, phone=data.phone, email=data.email
    )
    start = len(doc.text) + 1  # after the joining space
    spans = doc.name_spans + ((start, start + len(subject)),) if full_name else doc.name_spans
    return replace(doc, text=f"{doc.text} {sentence}", name_spans=spans)
