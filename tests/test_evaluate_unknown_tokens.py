"""Multiple choice is not quietly biased by unknown tokens: every context and choice qa_score
scores is free of ``<unk>`` with the tokenizer a run trains on its world, distractors come from
values the corpus shows, and a task that would score ``<unk>`` refuses in one line."""

from __future__ import annotations

import pytest
import torch

from transferlab.config import ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate import QaScoreConfig, build_requests
from transferlab.evaluate.qa import encode_prompt, shot_separator, unknown_id
from transferlab.models import build_model
from transferlab.worlds import ATTRIBUTES, BiosConfig, BiosWorld


@pytest.fixture(scope="module")
def world() -> BiosWorld:
    return BiosConfig(num_people=30, seed=4).build()


@pytest.fixture(scope="module")
def words(world: BiosWorld) -> TextTokenizer:
    """The tokenizer ``prepare_data`` trains on a world (word level, no newline in its texts)."""
    return train_tokenizer(TokenizerConfig(), world.tokenizer_texts())


ALL = {"eval_splits": ["train", "test"], "n_choices": 8, "n_shots": 2}


def test_every_context_and_choice_is_free_of_the_unknown_token(world, words) -> None:
    unk = unknown_id(words)
    assert unk is not None and unk not in shot_separator(words)
    examples = build_requests(QaScoreConfig(**ALL), world, words, seed=0)
    assert len(examples) == 30 * len(ATTRIBUTES)
    for example in examples:
        context, choices = example.request
        assert unk not in context and all(unk not in ids for ids in choices)
        # Shots are whole documents here: the corpus's boundary separates them.
        eos, bos = words.special.eos, words.special.bos
        assert [context[i : i + 2] for i in range(len(context) - 1)].count([eos, bos]) == 2


def test_distractors_are_values_the_corpus_shows(world, words) -> None:
    corpus = " ".join(world.documents())
    for attribute in ATTRIBUTES:
        shown = world.corpus_values(attribute)
        assert set(shown) == {getattr(person, attribute) for person in world.people}
        assert len(shown) == len(set(shown)) and all(value in corpus for value in shown)
    unseen = set(world.attribute_values("birth_date")) - set(world.corpus_values("birth_date"))
    assert unseen  # the full pool holds dates no text shows: drawing from it was the bias
    for example in build_requests(QaScoreConfig(**ALL), world, words, seed=1):
        assert set(example.choices) <= set(world.corpus_values(example.item.attribute))
        assert len(set(example.choices)) == 8


def test_a_newline_the_tokenizer_knows_separates_shots_as_before(world) -> None:
    bpe = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=400), world.tokenizer_texts())
    assert shot_separator(bpe) == bpe.encode("\n")
    for example in build_requests(QaScoreConfig(**ALL), world, bpe, seed=0)[:24]:
        item = example.item
        context = bpe.decode(example.request[0], skip_special_tokens=True)
        *shots, question = context.split("\n")
        assert question == item.question and len(shots) == 2
        # The pieces encode as the joined text does, so BPE scores are those of the text.
        assert example.request[0] == encode_prompt(bpe, context)


def test_a_task_that_would_score_an_unknown_token_refuses_in_one_line(world) -> None:
    capped = train_tokenizer(TokenizerConfig(vocab_size=60), world.tokenizer_texts())
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=capped.vocab_size, d_model=16, n_heads=2))
    task = QaScoreConfig(n_choices=4).build()
    with pytest.raises(ValueError) as info:
        task.run(model, capped, world, "r", seed=0)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("qa_score: the context of example ")
    assert "holds a token the tokenizer does not know (<unk>)" in message
    assert "tokenizer.vocab_size" in message


def test_too_few_values_in_the_corpus_for_the_choices_is_one_line(world, words) -> None:
    with pytest.raises(ValueError, match=r"n_choices=40 exceeds the \d+ values of 'major' the"):
        build_requests(QaScoreConfig(n_choices=40, attributes=["major"]), world, words, seed=0)
