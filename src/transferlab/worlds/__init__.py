"""Synthetic worlds: seeded generators of a pretraining corpus plus tasks with known answers.

Importing this package registers every world in ``transferlab.config.WORLDS``.
"""

from transferlab.worlds.base import World, build_world
from transferlab.worlds.bios import (
    ATTRIBUTES,
    BiosConfig,
    BiosWorld,
    Document,
    Person,
    QAItem,
    person_from_row,
)
from transferlab.worlds.modular import ModularConfig, ModularWorld

__all__ = [
    "ATTRIBUTES",
    "BiosConfig",
    "BiosWorld",
    "Document",
    "ModularConfig",
    "ModularWorld",
    "Person",
    "QAItem",
    "World",
    "build_world",
    "person_from_row",
]
