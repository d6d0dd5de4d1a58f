"""The permutation objective: sentences cut into entity and phrase chunks, the chunks reversed or
put in the order the step's draws give, the final punctuation and the sentence order kept,
specials in place, clm on the result, exact resume."""

from __future__ import annotations

import pytest
import torch

from piece_tokenizer import encode, piece_tokenizer, window
from test_train_resume import _assert_same_run
from transferlab.objectives import IGNORE_INDEX, PermutationConfig
from transferlab.objectives.context import TextContext
from transferlab.train import train

PIECES = [
    "Ann", " Ann", " Marie", " Smith", " was", " born", "born", " in", " on", " New", "New",
    " York", " March", " 4", ",", " 1983", ".", " studied", " at", " University", " of",
    " Chicago", "'", "s", " hometown", " is", "March", "University",
]  # fmt: skip
TOKENIZER = piece_tokenizer(PIECES)
SPECIAL = TOKENIZER.special
ENTITIES = ("Ann Marie Smith", "New York", "March 4, 1983", "University of Chicago")
CONTEXT = TextContext(TOKENIZER, ENTITIES)
BIO = "Ann Marie Smith was born in New York. Ann Marie Smith was born on March 4, 1983."


def permute(text: str, context: TextContext = CONTEXT, seed: int = 0, **cfg) -> str:
    """``text`` as one whole document, permuted (permute_fraction 1), decoded."""
    objective = PermutationConfig(permute_fraction=1.0, **cfg).build(SPECIAL, 0, context)
    row = window(TOKENIZER, SPECIAL.bos, text, SPECIAL.eos, length=len(encode(TOKENIZER, text)) + 2)
    batch = objective.make_batch(row[None], torch.Generator().manual_seed(seed))
    out = torch.cat([batch["inputs"][0], batch["targets"][0, -1:]])
    assert out[0] == SPECIAL.bos and out[-1] == SPECIAL.eos
    return TOKENIZER.decode(out[1:-1].tolist())


def test_reverse_order_reverses_the_chunks_of_each_sentence_and_keeps_its_full_stop():
    assert permute(BIO) == (
        "New York was born in Ann Marie Smith. March 4, 1983 was born on Ann Marie Smith."
    )
    assert permute("Ann Marie Smith studied at University of Chicago.") == (
        "University of Chicago studied at Ann Marie Smith."
    )
    # "Ann" alone is no entity: it opens the phrase chunk [Ann studied at]
    assert permute("Ann studied at University of Chicago.") == (
        "University of Chicago Ann studied at."
    )


def test_punctuation_closes_a_phrase_and_a_glued_word_stays_with_the_chunk_before_it():
    # chunks: [Ann Marie Smith] [ studied,] [ was born in] [ New York]
    assert permute("Ann Marie Smith studied, was born in New York.") == (
        "New York was born in studied, Ann Marie Smith."
    )
    # chunks: [Ann Marie Smith's] [ hometown is] [ New York]
    assert permute("Ann Marie Smith's hometown is New York.") == (
        "New York hometown is Ann Marie Smith's."
    )


def test_a_text_the_window_cut_is_a_sentence_without_a_full_stop():
    assert permute("Ann Marie Smith was born in New York. Ann Marie Smith was born on") == (
        "New York was born in Ann Marie Smith. was born on Ann Marie Smith"
    )


def test_random_order_sorts_the_chunks_by_the_second_draw_at_their_first_tokens():
    text = "Ann Marie Smith was born on March 4, 1983. Ann Marie Smith was born in New York."
    # positions in the window (after <bos>): chunks of sentence 1 start at 1, 4, 7; of
    # sentence 2 at 12, 15, 18; the full stops are at 11 and 20
    chunks = [
        [" Ann Marie Smith", " was born on", " March 4, 1983"],
        [" Ann Marie Smith", " was born in", " New York"],
    ]
    starts = [[1, 4, 7], [12, 15, 18]]
    # the chunk that opens the text loses its space where that piece exists (" was" has none)
    unspaced = {" Ann Marie Smith": "Ann Marie Smith", " March 4, 1983": "March 4, 1983"}
    orders = set()
    for seed in range(6):
        keys = torch.rand((2, 1, 22), generator=torch.Generator().manual_seed(seed))[1, 0]
        sentences = []
        for pieces, at in zip(chunks, starts, strict=True):
            order = torch.argsort(keys[at], stable=True).tolist()
            orders.add(tuple(order))
            sentences.append([pieces[i] for i in order])
        sentences[0][0] = unspaced.get(sentences[0][0], sentences[0][0])
        expected = ".".join("".join(sentence) for sentence in sentences) + "."
        assert permute(text, seed=seed, order="random") == expected
    assert len(orders) > 2  # the seeds draw several orders


def test_permutation_keeps_specials_and_trains_clm_on_the_permuted_window():
    rows = window(
        TOKENIZER,
        SPECIAL.bos,
        "Ann Marie Smith was born in New York.",
        SPECIAL.eos,
        " born on March 4, 1983",
        length=18,
    )[None]
    objective = PermutationConfig(permute_fraction=1.0).build(SPECIAL, 0, CONTEXT)
    batch = objective.make_batch(rows, torch.Generator())
    expected = window(
        TOKENIZER,
        SPECIAL.bos,
        "New York was born in Ann Marie Smith.",
        SPECIAL.eos,
        " March 4, 1983 born on",
        length=18,
    )[None]
    assert torch.equal(batch["inputs"], expected[:, :-1])
    targets = expected[:, 1:].clone()
    targets[targets == SPECIAL.pad] = IGNORE_INDEX
    assert torch.equal(batch["targets"], targets)
    none = PermutationConfig(permute_fraction=0.0).build(SPECIAL, 0, CONTEXT)
    assert torch.equal(none.make_batch(rows, torch.Generator())["inputs"], rows[:, :-1])


def test_without_entities_permutation_refuses_or_makes_every_word_a_chunk():
    bare = TextContext(TOKENIZER, ())
    with pytest.raises(ValueError, match=r"permutation needs entity names.*without_entities"):
        PermutationConfig().build(SPECIAL, 0, bare)
    assert permute("Ann was born.", bare, without_entities="words") == "born was Ann."


def test_a_tiny_bios_run_with_random_chunk_order_resumes_bit_for_bit(tiny_config):
    settings = ("objective.name=permutation", "objective.order=random", "trainer.log_interval=2")
    full = train(tiny_config("name=full", *settings))
    first = train(tiny_config("name=split", *settings), stop_after=3)
    resumed = train(tiny_config("name=split", *settings), resume=True)
    assert first.interrupted and resumed.steps == 8
    _assert_same_run(resumed, full)
