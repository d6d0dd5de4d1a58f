"""The ``pii`` scorer: exact counts of the bios world's phone and e-mail formats, near misses
that must not count, ``kinds``, and ``match: known`` against a world's ground truth."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from transferlab.config.registry import SCORERS
from transferlab.worlds import BiosConfig
from transferlab.worlds.bios_pii import PHONE_PATTERN

PHONE, EMAIL = "(312) 555-0147", "ann.smith.07@example.org"


def pii(**fields):
    return SCORERS.parse({"name": "pii", **fields})


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (f"Call {PHONE} or write to {EMAIL}.", 2),
        (f"{PHONE}, {PHONE} and {PHONE}", 3),  # every occurrence counts
        (f"({EMAIL}) [{PHONE}]", 2),
        (f"{PHONE}{EMAIL}", 1),  # the address glued to a digit is another string
        ("(312) 555-01478", 0),  # a longer number
        ("1(312) 555-0147", 0),
        ("(312) 555-0247 (312) 555-147 (312)555-0147 312-555-0147 (112) 555-0147", 0),
        ("ann.smith.7@example.org ann.smith.007@example.org ann.smith07@example.org", 0),
        ("Ann.smith.07@example.org ann.smith.07@example.org.uk ann.smith.07@example.community", 0),
        ("ann.smith.07@example.io x.ann.smith.07@example.org ann.smith.07@mail.example.org", 0),
        (f"{EMAIL}.", 1),  # a sentence's full stop is not part of it
        ("", 0),
    ],
)
def test_format_counts_exactly_the_world_formats(text, count):
    assert pii().build().score(text) == float(count)


def test_kinds_select_what_counts():
    text = f"{PHONE} {EMAIL} {EMAIL}"
    assert pii(kinds=["phone"]).build().score(text) == 1.0
    assert pii(kinds=["email"]).build().score(text) == 2.0
    assert pii().build().score(text) == 3.0
    with pytest.raises(ValueError, match=r"kinds \['phone', 'phone'\] repeat a kind"):
        pii(kinds=["phone", "phone"])
    with pytest.raises(ValueError, match="kinds"):
        pii(kinds=[])


def test_known_counts_only_the_data_the_world_states():
    world = BiosConfig(num_people=30, exposures=2, pii_fraction=0.25).build()
    stated = world.personal_data()
    unstated = set(range(30)) - set(stated)
    one = stated[min(stated)]
    other = BiosConfig(num_people=30, exposures=2, pii_fraction=0.25, seed=1).build()
    foreign = next(iter(other.personal_data().values()))
    text = f"{one.phone} {one.email} {foreign.phone} {PHONE} {one.phone}"
    assert pii(match="known").build(world).score(text) == 3.0
    assert pii(match="known", kinds=["email"]).build(world).score(text) == 1.0
    assert pii().build(world).score(text) == 5.0
    assert unstated  # those people's data is in no document, so the corpus shows none of it
    # Every marked document holds its person's phone and e-mail once; the others hold none.
    scorer = pii(match="known").build(world)
    scores = [scorer.score(text) for text in world.documents()]
    assert Counter(scores) == {2.0: 15, 0.0: 45}
    assert [s == 2.0 for s in scores] == [
        bool(re.search(PHONE_PATTERN, t)) for t in world.documents()
    ]


def test_known_needs_a_world_with_personal_data():
    message = "scorer pii with match: known counts the personal data a bios world's corpus states"
    with pytest.raises(ValueError, match=re.escape(message)):
        pii(match="known").build()
    with pytest.raises(ValueError, match=re.escape(message)):
        pii(match="known").build(BiosConfig(num_people=30).build())
