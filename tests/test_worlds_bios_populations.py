"""Populations of the bios world: group sizes, exposure draws, documents per person, the
interleaving with uneven rounds, the QA split per group, validation people, files, the
byte-identical default and one-line errors."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from itertools import pairwise

import pyarrow.parquet as pq
import pytest

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.data.prepare import data_key
from transferlab.train.run_dir import config_key
from transferlab.worlds import BiosConfig, BiosWorld, build_world
from transferlab.worlds.bios import round_members
from transferlab.worlds.bios_populations import (
    FixedExposures,
    ParetoExposures,
    PopulationConfig,
    ZipfExposures,
    apportion,
    population_sizes,
)

CELEBRITIES = {
    "name": "celebrities",
    "share": 0.25,
    "rephrasings": 3,
    "shuffle_sentences": True,
    "exposures": {"dist": "zipf", "exponent": 1.2, "min": 1, "max": 12},
}
ORDINARY = {"name": "ordinary", "share": 0.5, "full_name": False, "exposures": 2}
NICHE = {
    "name": "niche",
    "share": 0.25,
    "exposures": {"dist": "pareto", "shape": 1.5, "scale": 1, "max": 8},
}


def mixed_world(num_people: int = 48, seed: int = 3) -> BiosWorld:
    return BiosConfig(
        num_people=num_people, seed=seed, populations=[CELEBRITIES, ORDINARY, NICHE]
    ).build()


class Uniforms:
    """A stand-in for ``random.Random`` whose ``random()`` returns the given numbers."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize(
    ("shares", "num_people", "sizes"),
    [
        ((0.25, 0.75), 400, [100, 300]),
        # 2.5, 2.5, 5: the one person left over goes to the first of the tied remainders
        ((0.25, 0.25, 0.5), 10, [3, 2, 5]),
        # 33.3334, 33.3333, 33.3333: to the largest remainder
        ((0.333334, 0.333333, 0.333333), 100, [34, 33, 33]),
        # 1.4, 5.6, 7.0: floors 1, 5, 7 leave one, the largest remainder (0.6) takes it
        ((0.1, 0.4, 0.5), 14, [1, 6, 7]),
    ],
)
def test_sizes_from_shares_round_by_the_largest_remainder(shares, num_people, sizes):
    populations = [PopulationConfig(name=f"p{i}", share=s) for i, s in enumerate(shares)]
    assert population_sizes(populations, num_people) == sizes
    assert sum(sizes) == num_people


def test_sizes_from_counts_and_people_in_id_order():
    w = BiosConfig(
        num_people=9,
        populations=[
            {"name": "a", "count": 2},
            {"name": "b", "count": 4},
            {"name": "c", "count": 3},
        ],
    ).build()
    assert w.population_sizes == [2, 4, 3]
    assert [m.population.name for m in w.memberships] == ["a"] * 2 + ["b"] * 4 + ["c"] * 3
    assert w.population_names() == ["a", "b", "c"]


# ----------------------------------------------------------------------------- exposures
def test_each_distribution_inverts_its_distribution_function():
    # zipf, exponent 1 on [1, 3]: weights 1, 1/2, 1/3 (total 11/6); the uniform times 11/6
    # falls below 1 -> 1, below 3/2 -> 2, else 3.
    zipf = ZipfExposures(exponent=1.0, min=1, max=3)
    assert zipf.draw(Uniforms(0.0, 0.5, 0.6, 0.8, 0.9, 0.999), 6) == [1, 1, 2, 2, 3, 3]
    shifted = ZipfExposures(exponent=2.0, min=4, max=4)
    assert shifted.draw(Uniforms(0.3), 1) == [4]
    # pareto, shape 1, scale 1, max 9: x = 1 / (1 - 0.9 u), so u = 0.5 -> 1.82, u = 0.8 -> 3.57
    pareto = ParetoExposures(shape=1.0, scale=1.0, max=9)
    assert pareto.draw(Uniforms(0.0, 0.5, 0.8, 0.999999), 4) == [1, 1, 3, 9]
    assert FixedExposures(count=4).draw(Uniforms(), 3) == [4, 4, 4]


@pytest.mark.parametrize(
    ("dist", "pmf"),
    [
        (
            ZipfExposures(exponent=1.5, min=2, max=6),
            {k: k**-1.5 / sum(j**-1.5 for j in range(2, 7)) for k in range(2, 7)},
        ),
        (
            ParetoExposures(shape=1.2, scale=1.0, max=5),
            {
                k: ((1 / k) ** 1.2 - (1 / (k + 1)) ** 1.2) / (1 - (1 / 6) ** 1.2)
                for k in range(1, 6)
            },
        ),
    ],
)
def test_draws_follow_the_distribution(dist, pmf):
    n = 20000
    counts = Counter(dist.draw(random.Random(0), n))
    assert set(counts) == set(pmf)
    for k, p in pmf.items():  # within 4 standard errors
        assert abs(counts[k] / n - p) < 4 * math.sqrt(p * (1 - p) / n), k


def test_exposures_per_person_are_seeded_and_exact():
    populations = [
        {"name": "zipf", "count": 8, "exposures": {"dist": "zipf", "exponent": 1.2, "max": 12}},
        {
            "name": "pareto",
            "count": 8,
            "exposures": {"dist": "pareto", "shape": 1.5, "scale": 1.5, "max": 8},
        },
        {"name": "fixed", "count": 4, "exposures": 3},
    ]
    w = BiosConfig(num_people=20, seed=11, populations=populations).build()
    exposures = [m.exposures for m in w.memberships]
    assert exposures == [8, 2, 10, 11, 6, 1, 2, 2, 1, 4, 2, 1, 2, 3, 1, 1, 3, 3, 3, 3]
    # A population's draws come from a stream of its own: another population's changes (here
    # its distribution and rephrasings) leave them as they were.
    populations[0] = {**populations[0], "rephrasings": 2, "exposures": 5}
    other = BiosConfig(num_people=20, seed=11, populations=populations).build()
    assert [m.exposures for m in other.memberships][8:] == exposures[8:]
    assert BiosConfig(num_people=20, seed=12, populations=populations).build().memberships != (
        other.memberships
    )


# ----------------------------------------------------------------------------- corpus
def test_documents_per_person_are_rephrasings_times_their_exposures():
    w = mixed_world()
    per_person = Counter(doc.person_id for doc in w.corpus())
    per_biography = Counter((doc.person_id, doc.rephrasing) for doc in w.corpus())
    for person_id, membership in enumerate(w.memberships):
        rephrasings = membership.population.rephrasings
        assert per_person[person_id] == membership.documents == rephrasings * membership.exposures
        for r in range(rephrasings):
            assert per_biography[person_id, r] == membership.exposures
        texts = {doc.text for doc in w.corpus() if doc.person_id == person_id}
        assert len(texts) == rephrasings
    assert len(w.corpus()) == sum(m.documents for m in w.memberships)
    # Exposures really vary within the drawn populations.
    assert len({m.exposures for m in w.memberships[:12]}) > 3


def test_each_population_writes_in_its_own_style():
    w = mixed_world()
    for doc in w.corpus():
        person, population = w.people[doc.person_id], w.memberships[doc.person_id].population
        named = doc.text.count(person.full_name)
        assert named == (6 if population.full_name else 1)
    celebrity_orders = {
        doc.text.split(".")[0]
        for doc in w.corpus()
        if w.memberships[doc.person_id].population.name == "celebrities"
    }
    assert len(celebrity_orders) > 6  # shuffled sentences: the first sentence varies


def test_uneven_rounds_spread_each_persons_documents_over_the_corpus():
    w = mixed_world()
    members = round_members(w.memberships, seed=3)
    n_rounds = len(members)
    assert n_rounds == max(m.documents for m in w.memberships)
    # The corpus is the rounds one after the other, each person at most once per round.
    corpus, start, starts = w.corpus(), 0, []
    for people in members:
        starts.append(start)
        block = [doc.person_id for doc in corpus[start : start + len(people)]]
        assert sorted(block) == sorted(people)
        start += len(people)
    assert start == len(corpus)
    round_of = [r for r, people in enumerate(members) for _ in people]
    for person_id, membership in enumerate(w.memberships):
        d = membership.documents
        rounds = [r for r, people in enumerate(members) if person_id in people]
        assert len(rounds) == d
        # evenly spaced: consecutive rounds floor or ceil of n_rounds / d apart
        assert {b - a for a, b in pairwise(rounds)} <= {n_rounds // d, -(-n_rounds // d)}
        # any prefix of R rounds holds within one of the person's share R * d / n_rounds
        for r in range(n_rounds + 1):
            assert abs(sum(x < r for x in rounds) - r * d / n_rounds) < 1
        positions = [doc.id for doc in corpus if doc.person_id == person_id]
        assert [round_of[p] for p in positions] == rounds
        for a, b in pairwise(positions):  # at least every round in between lies between them
            between = sum(len(members[r]) for r in range(round_of[a] + 1, round_of[b]))
            assert b - a > between
    # A person with two documents sees them about half a corpus apart.
    twice = [p for p, m in enumerate(w.memberships) if m.documents == 2]
    for person_id in twice:
        a, b = (doc.id for doc in corpus if doc.person_id == person_id)
        assert b - a > len(corpus) // 3
    assert all(a.person_id != b.person_id for a, b in pairwise(corpus))


def test_qa_split_is_drawn_within_each_population():
    w = BiosConfig(
        num_people=40,
        qa_test_fraction=0.25,
        populations=[{"name": "a", "count": 10}, {"name": "b", "count": 30}],
    ).build()
    tests = Counter(w.memberships[p].population.name for p in w.split()["test"])
    assert tests == {"a": round(10 * 0.25), "b": round(30 * 0.25)}
    assert all(item.split == w.people[item.person_id].split for item in w.qa_items())


# ----------------------------------------------------------------------------- validation
def test_apportion_keeps_every_prefix_within_one_of_its_quota():
    sizes = [7, 2, 31]
    order = apportion(sizes, 200)
    for k in range(1, 201):
        held = Counter(order[:k])
        for i, size in enumerate(sizes):
            assert abs(held[i] - k * size / sum(sizes)) < 1
    assert apportion([5], 4) == [0, 0, 0, 0]


def test_validation_people_join_populations_in_proportion_and_in_their_style():
    w = mixed_world()
    val = w.validation_documents(40)
    assert w.validation_documents(25) == val[:25]
    # ordinary (half the people) writes pronouns after the opening sentence: one name mention
    names = [" ".join(t.split()[:3]).removesuffix("'s") for t in val]
    pronoun_style = [t for t, name in zip(val, names, strict=True) if t.count(name) == 1]
    assert len(pronoun_style) == 20
    assert not set(val) & set(w.documents())


# ----------------------------------------------------------------------------- files
def test_ground_truth_records_population_exposures_and_documents(tmp_path):
    cfg = BiosConfig(num_people=24, seed=1, populations=[CELEBRITIES, ORDINARY, NICHE])
    out = build_world(cfg, tmp_path / "world")
    w = cfg.build()
    rows = pq.read_table(out / "people.parquet").to_pylist()
    assert [(r["population"], r["exposures"], r["documents"]) for r in rows] == [
        (m.population.name, m.exposures, m.documents) for m in w.memberships
    ]
    corpus = [json.loads(line) for line in (out / "corpus.jsonl").read_text().splitlines()]
    assert [d["population"] for d in corpus] == [
        w.memberships[d.person_id].population.name for d in w.corpus()
    ]
    assert Counter(d["person_id"] for d in corpus) == {r["person_id"]: r["documents"] for r in rows}
    assert BiosConfig.model_validate(json.loads((out / "world.json").read_text())) == cfg


# Keys and file digests of two configs, computed before populations existed (commit 3c6087b).
BEFORE_POPULATIONS = [
    (
        {},
        {
            "config_key": "70326e30c912ec0b",
            "data_key": "527d39cb780f5d69",
            "corpus.jsonl": "4bc095a548b17f09",
            "qa.jsonl": "4a6d05fcd4f16e2d",
            "split.json": "3000329892272549",
            "world.json": "5565901e02771dad",
            "validation": "3c310e29a4e1bb94",
        },
    ),
    (
        {
            "num_people": 80,
            "rephrasings": 3,
            "exposures": 2,
            "shuffle_sentences": True,
            "full_name": False,
        },
        {
            "config_key": "364282a6940d7d7e",
            "data_key": "4bee14fe72f16904",
            "corpus.jsonl": "81825e72fdda1660",
            "qa.jsonl": "4e702c87bc955909",
            "split.json": "1834b17ab50eab8b",
            "world.json": "7551e97b4586db8c",
            "validation": "bb812e26764a1c50",
        },
    ),
]


@pytest.mark.parametrize(("knobs", "expected"), BEFORE_POPULATIONS)
def test_without_populations_keys_and_files_are_those_before(tmp_path, knobs, expected):
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:16]

    cfg = RunConfig(world={"name": "bios", **knobs})
    w = cfg.world.build()
    w.write(tmp_path)
    found = {"config_key": config_key(cfg), "data_key": data_key(cfg)}
    found |= {name: digest((tmp_path / name).read_bytes()) for name in expected if "." in name}
    found["validation"] = digest(json.dumps(w.validation_documents(50)).encode())
    assert found == expected
    assert pq.read_table(tmp_path / "people.parquet").column_names[-1] == "split"
    assert "populations" not in cfg.world.to_dict()
    assert w.facets(0) == {} and w.population_names() == []


# ----------------------------------------------------------------------------- config errors
def _two(first: dict, second: dict | None = None) -> list[dict]:
    return [{"name": "a", "share": 0.5, **first}, second or {"name": "b", "share": 0.5}]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"populations": []}, "world: populations is empty; list at least one"),
        (
            {"populations": _two({"share": 0.4})},
            "world: population shares sum to 0.9, not 1; rescale them",
        ),
        (
            {"populations": _two({}, {"name": "b", "count": 10})},
            "give every population a share or every one a count, not a mix",
        ),
        (
            {"populations": [{"name": "a", "count": 3}, {"name": "b", "count": 4}]},
            "population counts sum to 7, not num_people=20; make them agree",
        ),
        (
            {"populations": _two({"exposures": {"dist": "poisson"}})},
            "world.populations.0.exposures: unknown exposures dist 'poisson'; expected one of "
            "['fixed', 'zipf', 'pareto']",
        ),
        (
            {"populations": _two({"exposures": {"dist": "zipf", "min": 5, "max": 2}})},
            "zipf exposures: max=2 < min=5; raise max",
        ),
        (
            {"populations": _two({"exposures": {"dist": "pareto", "scale": 5, "max": 2}})},
            "pareto exposures: max=2 < scale=5.0; raise max",
        ),
        ({"populations": _two({"exposures": {"dist": "zipf"}})}, "max: missing"),
        ({"populations": _two({}, {"name": "a", "share": 0.5})}, "repeat the name(s) ['a']"),
        (
            {"populations": _two({"share": None})},
            "population 'a' needs exactly one of share and count; got share=None, count=None",
        ),
        (
            {"populations": _two({"share": 0.98}, {"name": "b", "share": 0.02})},
            "population 'b' gets 0 of num_people=20 people; every population needs two",
        ),
        (
            {"rephrasings": 3, "populations": _two({})},
            "rephrasings is set per population when populations are given; move rephrasings=3",
        ),
        (
            {"shuffle_sentences": True, "populations": _two({})},
            "shuffle_sentences is set per population",
        ),
        ({"populations": _two({"name": "a b"})}, "world.populations.0.name: got 'a b'"),
    ],
)
def test_bad_populations_fail_with_one_line(knobs, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        validate(RunConfig, {"world": {"name": "bios", "num_people": 20, **knobs}})
    assert "\n" not in str(caught.value)
