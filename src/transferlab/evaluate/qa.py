"""Token-level examples built from the bios world's question/answer items.

Text format, shared by every QA task: a prompt is ``<bos>`` followed by the question, and the
answer continues it after one space: ``"<bos>When was Ada Lee Moss born? March 4, 1983"``. The
prompt and the answer are encoded separately (``encode(question)`` and ``encode(" " + answer)``),
so the boundary between them is a token boundary; both tokenizers here split before a space,
so this is also how the joined text tokenizes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from transferlab.data.tokenizer import TextTokenizer
from transferlab.worlds.bios import BiosWorld, QAItem


def select_items(
    world: BiosWorld, splits: Sequence[str], attributes: Sequence[str]
) -> list[QAItem]:
    """The world's QA items of people in ``splits`` asking about ``attributes``, in world order."""
    return [
        item for item in world.qa_items() if item.split in splits and item.attribute in attributes
    ]


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


def draw_choices(
    world: BiosWorld, item: QAItem, n_choices: int, rng: random.Random
) -> tuple[list[str], int]:
    """(choices, index of the gold answer): the answer plus ``n_choices - 1`` distinct
    distractors drawn from the attribute's values, in a random order."""
    pool = world.attribute_values(item.attribute)
    if n_choices > len(pool):
        raise ValueError(
            f"n_choices={n_choices} exceeds the {len(pool)} values of {item.attribute!r}; "
            "lower n_choices"
        )
    distractors: list[str] = []
    seen = {item.answer}
    while len(distractors) < n_choices - 1:  # pools are large: rejection is cheap
        value = pool[rng.randrange(len(pool))]
        if value not in seen:
            seen.add(value)
            distractors.append(value)
    choices = [item.answer, *distractors]
    rng.shuffle(choices)
    return choices, choices.index(item.answer)


def few_shot_prefix(
    item: QAItem, shot_pool: Sequence[QAItem], n_shots: int, rng: random.Random
) -> str:
    """``n_shots`` lines ``"question answer\\n"`` about the same attribute, from other people.

    Same-attribute shots show the answer's format (a date, a city ...) without giving away the
    answer: the item's own person is never among them.
    """
    if n_shots == 0:
        return ""
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
    shots = rng.sample(candidates, n_shots)
    return "".join(f"{shot.question}{answer_text(shot.answer)}\n" for shot in shots)
