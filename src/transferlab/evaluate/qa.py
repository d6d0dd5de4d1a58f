"""Token-level examples built from the bios world's question/answer items.

Text format, shared by every QA task: a prompt is ``<bos>`` followed by the question, and the
answer continues it after one space: ``"<bos>When was Ada Lee Moss born? March 4, 1983"``. The
prompt and the answer are encoded separately (``encode(question)`` and ``encode(" " + answer)``),
so the boundary between them is a token boundary; both tokenizers here split before a space,
so this is also how the joined text tokenizes.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any, Literal

from transferlab.data.tokenizer import UNK_TOKEN, TextTokenizer
from transferlab.worlds.bios import BiosWorld, QAItem
from transferlab.worlds.bios_populations import PopulationSplit
from transferlab.worlds.bios_reverse import ReverseQAItem

# A question of either direction: both have an id, a person, an attribute, a question, an answer
# and a split, which is all the QA helpers read.
Question = QAItem | ReverseQAItem
Direction = Literal["forward", "reverse"]


def select_items(
    world: BiosWorld,
    splits: Sequence[str],
    attributes: Sequence[str],
    direction: Direction = "forward",
    *,
    populations: PopulationSplit = PopulationSplit(),
) -> list[Question]:
    """The world's questions of ``direction`` (forward: person -> attribute; reverse: attribute
    -> person) about facts of ``attributes``, of people in ``splits``, in world order. An item's
    ``split`` is its person's QA split as ``populations`` sets it (default: the world's); a
    population on neither side of ``populations`` has no items."""
    populations.check(world.population_names())
    items = world.qa_items() if direction == "forward" else world.reverse_qa_items()
    selected = []
    for item in items:
        population = world.memberships[item.person_id].population.name
        split = populations.split_of(population, item.split)
        if split in splits and item.attribute in attributes:
            selected.append(item if split == item.split else dataclasses.replace(item, split=split))
    return selected


def answer_text(answer: str) -> str:
    """The answer as it continues a prompt."""
    return " " + answer


def encode_prompt(tokenizer: TextTokenizer, text: str) -> list[int]:
    return [tokenizer.special.bos, *tokenizer.encode(text)]


def encode_answer(tokenizer: TextTokenizer, answer: str, eos: bool = False) -> list[int]:
    """Token ids of the answer continuation, with a closing ``<eos>`` when ``eos``."""
    ids = tokenizer.encode(answer_text(answer))
    return [*ids, tokenizer.special.eos] if eos else ids


def example_rng(seed: int, purpose: str, item_id: str) -> random.Random:
    """A stream of its own per (seed, purpose, example): an example's draws (distractors,
    shots) do not depend on which other examples are evaluated or in what order."""
    return random.Random(f"{purpose}:{seed}:{item_id}")


def train_and_eval_items(world: BiosWorld, cfg: Any) -> list[Question]:
    """The forward items a task that trains on the QA-train people reads: ``cfg``'s attributes,
    of the QA-train people and of ``cfg.eval_splits``, split by ``cfg``'s populations."""
    splits = sorted({"train", *cfg.eval_splits})
    return select_items(world, splits, cfg.attribute_names, populations=cfg.population_split)


def draw_choices(
    pool: Sequence[str], answer: str, what: str, n_choices: int, rng: random.Random
) -> tuple[list[str], int]:
    """(choices, index of the gold answer): ``answer`` plus ``n_choices - 1`` distinct
    distractors from ``pool`` (the values of ``what`` the corpus shows), in a random order.
    Values the corpus never shows are left out of the pool: the answer always is one the model
    saw, so an unseen distractor (an ``<unk>`` for a word-level tokenizer) would be an easy
    giveaway."""
    others = [value for value in pool if value != answer]
    if n_choices - 1 > len(others):
        raise ValueError(
            f"n_choices={n_choices} exceeds the {len(others) + 1} values of {what!r} "
            "the world's corpus shows; lower n_choices or use a bigger world"
        )
    choices = [answer, *rng.sample(others, n_choices - 1)]
    rng.shuffle(choices)
    return choices, choices.index(answer)


def draw_shots(
    item: Question, shot_pool: Sequence[Question], n_shots: int, rng: random.Random
) -> list[Question]:
    """``n_shots`` items about the same attribute, from other people.

    Same-attribute shots show the answer's format (a date, a city ...) without giving away the
    answer: the item's own person is never among them.
    """
    if n_shots == 0:
        return []
    candidates = [
        shot
        for shot in shot_pool
        if shot.attribute == item.attribute and shot.person_id != item.person_id
    ]
    if len(candidates) < n_shots:
        raise ValueError(
            f"n_shots={n_shots} but only {len(candidates)} QA-train people can be shown for "
            f"{item.attribute!r}; lower n_shots or use a bigger world"
        )
    return rng.sample(candidates, n_shots)


def shot_separator(tokenizer: TextTokenizer) -> list[int]:
    """What ends a shot: a newline where the tokenizer knows it, else the document boundary the
    corpus was packed with (``<eos><bos>``), which every tokenizer knows. A word-level
    tokenizer trained on a corpus without newlines would read ``"\n"`` as ``<unk>``."""
    newline = tokenizer.encode("\n")
    if newline and unknown_id(tokenizer) not in newline:
        return newline
    return [tokenizer.special.eos, tokenizer.special.bos]


def encode_context(tokenizer: TextTokenizer, shots: Sequence[Question], question: str) -> list[int]:
    """``<bos>``, each shot as ``question answer`` and a separator, then the question. Each
    piece is encoded on its own; both tokenizers split before and after a newline anyway, so
    with a newline separator this is how the joined text tokenizes."""
    ids = [tokenizer.special.bos]
    separator = shot_separator(tokenizer) if shots else []
    for shot in shots:
        ids += [*tokenizer.encode(shot.question + answer_text(shot.answer)), *separator]
    return [*ids, *tokenizer.encode(question)]


def unknown_id(tokenizer: TextTokenizer) -> int | None:
    """The id of ``<unk>`` (word-level tokenizers), or None when the tokenizer has none."""
    return tokenizer.token_to_id(UNK_TOKEN)


def check_known(tokenizer: TextTokenizer, ids: Sequence[int], task: str, what: str) -> None:
    """A one-line ValueError when ``ids`` (what a task scores) hold ``<unk>``: its score would
    say how the model reads "some unknown word", not the text."""
    unk = unknown_id(tokenizer)
    if unk is not None and unk in ids:
        raise ValueError(
            f"{task}: {what} holds a token the tokenizer does not know ({UNK_TOKEN}), so its "
            "score would be biased; train the tokenizer on text that shows it (a larger "
            "tokenizer.vocab_size, or tokenizer.kind=bpe)"
        )
