"""Populations of the bios world: named groups of people, each written its own way.

A population is a share (or a count) of the people with its own ``rephrasings``,
``exposures``, ``shuffle_sentences`` and ``full_name``; a world without ``populations`` is the
one population its top-level knobs describe. People are assigned to populations in id order
(the first ``size_0`` people form the first population, and so on): ids are drawn independently
of everything, so a block of ids is a random sample of people.

Sizes. Counts are taken as given (they must sum to ``num_people``); shares are rounded by the
largest remainder: every population gets ``floor(share * num_people)`` people, and the people
left over go one each to the populations with the largest fractional parts (ties to the one
listed first). Every population holds at least two people, so both QA splits hold someone.

Exposures. Each person draws how many times each of their biographies appears:

- ``fixed``: ``count`` for everyone;
- ``zipf``: ``k`` in ``[min, max]`` with probability proportional to ``k ** -exponent`` (a
  discrete power law truncated to that range: most people rare, a few seen very often);
- ``pareto``: ``floor(x)`` of a Pareto draw ``x`` of ``shape`` and ``scale`` truncated to
  ``x < max + 1`` (a continuous heavy tail; ``floor(scale)`` is the fewest exposures).

Each distribution draws by inverting its distribution function at one uniform number per
person, from a stream of the population's own (named after it), so a person's count does not
depend on other populations.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, model_validator

from transferlab.config.base import BaseConfig


class FixedExposures(BaseConfig):
    """Every person of the population shows each biography ``count`` times."""

    dist: Literal["fixed"] = "fixed"  # the same count for everyone
    count: int = Field(default=1, ge=1)  # copies of each biography in the corpus

    def draw(self, rng: random.Random, n: int) -> list[int]:
        return [self.count] * n


class ZipfExposures(BaseConfig):
    """Exposures ``k`` in ``[min, max]`` with probability proportional to ``k ** -exponent``."""

    dist: Literal["zipf"] = "zipf"  # a discrete power law on [min, max]
    exponent: float = Field(default=1.0, gt=0)  # the power law's exponent (larger: steeper)
    min: int = Field(default=1, ge=1)  # the fewest exposures a person draws
    max: int = Field(ge=1)  # the most exposures a person draws

    @model_validator(mode="after")
    def _range_is_ordered(self) -> ZipfExposures:
        if self.max < self.min:
            raise ValueError(f"zipf exposures: max={self.max} < min={self.min}; raise max")
        return self

    def draw(self, rng: random.Random, n: int) -> list[int]:
        weights = [k**-self.exponent for k in range(self.min, self.max + 1)]
        cumulative = list(accumulate(weights))
        # bisect_right: a uniform at a cumulative boundary belongs to the next value; the min
        # guards the last value against rounding in the running sum.
        top = len(weights) - 1
        return [
            self.min + min(top, bisect.bisect_right(cumulative, rng.random() * cumulative[-1]))
            for _ in range(n)
        ]


class ParetoExposures(BaseConfig):
    """Exposures ``floor(x)`` of a Pareto draw ``x >= scale``, truncated to ``x < max + 1``."""

    dist: Literal["pareto"] = "pareto"  # a truncated Pareto draw, rounded down
    shape: float = Field(default=1.0, gt=0)  # the tail index alpha (smaller: heavier tail)
    scale: float = Field(default=1.0, ge=1)  # the smallest x; floor(scale) is the fewest exposures
    max: int = Field(ge=1)  # the most exposures a person draws

    @model_validator(mode="after")
    def _range_is_ordered(self) -> ParetoExposures:
        if self.max < self.scale:
            raise ValueError(f"pareto exposures: max={self.max} < scale={self.scale}; raise max")
        return self

    def draw(self, rng: random.Random, n: int) -> list[int]:
        # Inverse of the truncated distribution function F(x) = (1 - (scale/x)**shape) / mass on
        # [scale, max + 1), mass = 1 - (scale/(max + 1))**shape.
        mass = 1 - (self.scale / (self.max + 1)) ** self.shape
        return [
            min(self.max, math.floor(self.scale / (1 - rng.random() * mass) ** (1 / self.shape)))
            for _ in range(n)
        ]


EXPOSURE_DISTS = ("fixed", "zipf", "pareto")


def _exposures_shape(value: Any) -> Any:
    """An int is shorthand for ``{dist: fixed, count: N}``; an unknown ``dist`` fails in one line
    naming the known ones (pydantic's own message lists tags in its own words)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"dist": "fixed", "count": value}
    if isinstance(value, dict) and value.get("dist", "fixed") not in EXPOSURE_DISTS:
        raise ValueError(
            f"unknown exposures dist {value['dist']!r}; expected one of {list(EXPOSURE_DISTS)}"
        )
    if isinstance(value, dict) and "dist" not in value:
        return {"dist": "fixed", **value}
    return value


Exposures = Annotated[
    FixedExposures | ZipfExposures | ParetoExposures,
    Discriminator("dist"),
    BeforeValidator(_exposures_shape),
]


class PopulationConfig(BaseConfig):
    """One named group of the bios world's people and how their biographies are written (the
    same knobs as the world's top-level ones, per group; see ``worlds.bios``)."""

    # names the group in people.parquet, corpus.jsonl and the QA tasks' rows
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    share: float | None = Field(default=None, gt=0, le=1)  # its share of world.num_people
    count: int | None = Field(default=None, ge=2)  # or its number of people
    rephrasings: int = Field(default=1, ge=1, le=1000)  # distinct biographies per person
    # how often each biography appears: an int (fixed) or {dist: fixed | zipf | pareto, ...}
    exposures: Exposures = 1
    shuffle_sentences: bool = False  # each biography draws its sentence order (else fixed)
    full_name: bool = True  # False: the full name opens a biography, pronouns follow

    @model_validator(mode="after")
    def _share_or_count(self) -> PopulationConfig:
        if (self.share is None) == (self.count is None):
            raise ValueError(
                f"population {self.name!r} needs exactly one of share and count; got "
                f"share={self.share}, count={self.count}"
            )
        return self


def population_sizes(populations: Sequence[PopulationConfig], num_people: int) -> list[int]:
    """People per population: the counts, or the shares rounded by the largest remainder."""
    if populations[0].count is not None:
        return [p.count for p in populations]
    quotas = [p.share * num_people for p in populations]
    sizes = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (sizes[i] - quotas[i], i))
    for i in by_remainder[: num_people - sum(sizes)]:
        sizes[i] += 1
    return sizes


def check_populations(populations: Sequence[PopulationConfig], num_people: int) -> None:
    """A one-line ValueError when the populations do not split ``num_people`` people."""
    if not populations:
        raise ValueError("populations is empty; list at least one or leave it out")
    names = [p.name for p in populations]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"populations repeat the name(s) {repeated}; give each its own")
    by_count = [p.count is not None for p in populations]
    if any(by_count) and not all(by_count):
        raise ValueError("give every population a share or every one a count, not a mix")
    if all(by_count):
        total = sum(p.count for p in populations)
        if total != num_people:
            raise ValueError(
                f"population counts sum to {total}, not num_people={num_people}; make them agree"
            )
        return
    total_share = sum(p.share for p in populations)
    if abs(total_share - 1) > 1e-6:
        raise ValueError(f"population shares sum to {total_share:g}, not 1; rescale them")
    for population, size in zip(
        populations, population_sizes(populations, num_people), strict=True
    ):
        if size < 2:
            raise ValueError(
                f"population {population.name!r} gets {size} of num_people={num_people} people; "
                "every population needs two (one per QA split): raise its share or num_people"
            )


def spread_rounds(documents: int, n_rounds: int, offset: int) -> list[int]:
    """The rounds (of ``n_rounds >= documents``) that hold a person's ``documents`` documents:
    evenly spaced, document ``k`` in round ``(k * n_rounds + offset) // documents`` for an
    ``offset`` in ``[0, n_rounds)``. Integer arithmetic, so the rounds are distinct and the
    first ``R`` rounds hold ``ceil((R * documents - offset) / n_rounds)`` of them: within one of
    the person's share ``R * documents / n_rounds``."""
    return [(k * n_rounds + offset) // documents for k in range(documents)]


def apportion(sizes: Sequence[int], count: int) -> list[int]:
    """The population of each of ``count`` newcomers in proportion to ``sizes``: newcomer ``k``
    joins the population furthest behind its quota ``k * size / total`` (ties: the first), so
    after any ``k`` newcomers each population holds within one of its quota."""
    total = sum(sizes)
    held = [0] * len(sizes)
    order = []
    for k in range(1, count + 1):
        # Quotas scaled by ``total``, so the comparison is exact in integers.
        behind = [k * size - n * total for size, n in zip(sizes, held, strict=True)]
        chosen = max(range(len(sizes)), key=lambda i: (behind[i], -i))
        held[chosen] += 1
        order.append(chosen)
    return order


@dataclass(frozen=True)
class PopulationSplit:
    """Which populations a QA task trains on and which it evaluates (None: all).

    A person's QA split stays as the world drew it when their population is on both sides; a
    population only trained on is all QA-train, one only evaluated is all QA-test, and one on
    neither side is left out. So ``train: [celebrities], eval: [ordinary]`` fine-tunes on every
    celebrity and tests on every ordinary person, and the default keeps the world's split."""

    train: tuple[str, ...] | None = None
    eval: tuple[str, ...] | None = None

    def split_of(self, population: str, split: str) -> str | None:
        """The QA split of a person of ``population`` whose drawn split is ``split``."""
        trained = self.train is None or population in self.train
        evaluated = self.eval is None or population in self.eval
        if trained and evaluated:
            return split
        if trained or evaluated:
            return "train" if trained else "test"
        return None

    def check(self, known: Sequence[str]) -> None:
        """A one-line ValueError when a named population is not one of ``known`` (the world's
        population names; none for a world without populations)."""
        named = [*(self.train or ()), *(self.eval or ())]
        if named and not known:
            raise ValueError(
                f"train_populations/eval_populations name {sorted(set(named))} but the world has "
                "no populations; give world.populations or drop these fields"
            )
        if unknown := sorted(set(named) - set(known)):
            raise ValueError(
                f"unknown population(s) {unknown}; the world's populations are {list(known)}"
            )
