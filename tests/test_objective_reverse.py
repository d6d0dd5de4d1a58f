"""The reverse objective: which texts of a window are reversed, the exact reversed sequences at
token, word and entity level, specials in place, clm targets on the result, determinism, exact
resume, and the entity names the bios world declares."""

from __future__ import annotations

import pytest
import torch

from piece_tokenizer import encode, piece_tokenizer, window
from test_train_resume import _assert_same_run
from transferlab.config import RunConfig, validate
from transferlab.config.schemas import TokenizerConfig
from transferlab.data.prepare import prepare_data
from transferlab.data.tokenizer import train_tokenizer
from transferlab.experiment import estimate
from transferlab.objectives import IGNORE_INDEX, ReverseConfig
from transferlab.objectives.context import TextContext, text_context
from transferlab.objectives.entities import EntityLexicon, Unit, text_units
from transferlab.objectives.reorder import text_spans
from transferlab.objectives.words import word_table
from transferlab.train import train
from transferlab.worlds.bios import ATTRIBUTES, BiosConfig

PIECES = [
    "Ann", " Ann", " Marie", " Smith", " was", " born", " in", " on", " New", " York", "York",
    " March", " 4", ",", " 1983", ".", " Chicago", " studied", " at", " University", " of",
    " Yorker", "er", " City", "'", "s", " hometown", " is",
]  # fmt: skip
TOKENIZER = piece_tokenizer(PIECES)
SPECIAL = TOKENIZER.special
ENTITIES = (
    "Ann Marie Smith",
    "New York",
    "New York City",
    "March 4, 1983",
    "University of Chicago",
)
CONTEXT = TextContext(TOKENIZER, ENTITIES)
BIO = "Ann Marie Smith was born in New York. Ann Marie Smith was born on March 4, 1983."


def reverse(text: str, unit: str, context: TextContext = CONTEXT, **cfg) -> str:
    """``text`` as one whole document, reversed (reverse_fraction 1), decoded."""
    objective = ReverseConfig(reverse_fraction=1.0, unit=unit, **cfg).build(SPECIAL, 0, context)
    row = window(TOKENIZER, SPECIAL.bos, text, SPECIAL.eos, length=len(encode(TOKENIZER, text)) + 2)
    batch = objective.make_batch(row[None], torch.Generator().manual_seed(0))
    out = torch.cat([batch["inputs"][0], batch["targets"][0, -1:]])
    assert out[0] == SPECIAL.bos and out[-1] == SPECIAL.eos
    return TOKENIZER.decode(out[1:-1].tolist())


def test_token_level_reverses_the_token_order():
    assert reverse(BIO, "token") == TOKENIZER.decode(encode(TOKENIZER, BIO)[::-1])
    assert reverse(BIO, "token").endswith(" Smith MarieAnn")  # tokens only: no space is moved


def test_word_level_reverses_the_words_and_moves_the_opening_words_space():
    expected = ". 1983, 4 March on born was Smith Marie Ann. York New in born was Smith Marie Ann"
    assert reverse(BIO, "word") == expected


def test_entity_level_keeps_every_entity_name_in_its_own_order():
    expected = ". March 4, 1983 on born was Ann Marie Smith. New York in born was Ann Marie Smith"
    assert reverse(BIO, "entity") == expected
    assert reverse("Ann studied at University of Chicago.", "entity") == (
        ". University of Chicago at studied Ann"
    )


def test_the_longest_entity_wins_and_an_entity_must_end_where_a_word_ends():
    assert reverse("Ann was born in New York City.", "entity") == ". New York City in born was Ann"
    # " York" "er" is one word: "New York" is not found inside "New Yorker"
    words = word_table(TOKENIZER)
    tokens = torch.tensor(encode(TOKENIZER, "Ann was in New") + [TOKENIZER.token_to_id(" York")])
    tokens = torch.cat([tokens, torch.tensor([TOKENIZER.token_to_id("er")])]).numpy()
    units = text_units(tokens, words, EntityLexicon(TOKENIZER, ENTITIES))
    assert units[-2:] == [Unit(3, 4, False), Unit(4, 6, False)]
    assert text_units(tokens[:5], words, EntityLexicon(TOKENIZER, ENTITIES))[-1] == Unit(3, 5, True)


def test_the_new_opening_word_loses_its_space_only_where_that_token_exists():
    assert reverse("Ann was born in New York", "word") == "York New in born was Ann"
    assert reverse("Ann was born in Chicago", "word") == " Chicago in born was Ann"  # no "Chicago"
    # a text the window cut opens mid-way, with a space: nothing moves
    assert reverse(" was born in New York", "word") == " York New in born was"


def test_a_possessive_and_commas_are_words_of_their_own():
    assert reverse("Ann Marie Smith's hometown is New York.", "entity") == (
        ". New York is hometown's Ann Marie Smith"
    )


def test_a_windows_texts_are_reversed_between_specials_which_stay_in_place():
    """Row 0: a whole document, then the start of one the window cut; row 1: the end of a
    document, then padding. Every text is reversed (fraction 1), each on its own."""
    rows = torch.stack(
        [
            window(
                TOKENIZER,
                SPECIAL.bos,
                "Ann was born.",
                SPECIAL.eos,
                SPECIAL.bos,
                "Ann was",
                length=9,
            ),
            window(TOKENIZER, " born in New York.", SPECIAL.eos, length=9),
        ]
    )
    objective = ReverseConfig(reverse_fraction=1.0, unit="word").build(SPECIAL, 0, CONTEXT)
    batch = objective.make_batch(rows, torch.Generator().manual_seed(0))
    expected = torch.stack(
        [
            window(
                TOKENIZER,
                SPECIAL.bos,
                ". born was Ann",
                SPECIAL.eos,
                SPECIAL.bos,
                " was Ann",
                length=9,
            ),
            window(TOKENIZER, ". York New in born", SPECIAL.eos, length=9),
        ]
    )
    assert torch.equal(batch["inputs"], expected[:, :-1])
    targets = expected[:, 1:].clone()
    targets[targets == SPECIAL.pad] = IGNORE_INDEX  # the padding of row 1 carries no loss
    assert torch.equal(batch["targets"], targets)
    assert objective.n_targets(batch) == 8 + 5


def _bio_rows(n: int) -> torch.Tensor:
    """``n`` rows of two whole documents each (four texts counting the cut)."""
    row = window(
        TOKENIZER,
        SPECIAL.bos,
        "Ann was born.",
        SPECIAL.eos,
        SPECIAL.bos,
        "Ann was in New York.",
        SPECIAL.eos,
        length=14,
    )
    return row.repeat(n, 1)


def test_a_text_is_reversed_when_the_first_draw_at_its_first_token_is_below_the_fraction():
    rows = _bio_rows(32)
    objective = ReverseConfig(reverse_fraction=0.3, unit="token").build(SPECIAL, 0, CONTEXT)
    batch = objective.make_batch(rows, torch.Generator().manual_seed(11))
    draws = torch.rand((2, *rows.shape), generator=torch.Generator().manual_seed(11))[0]
    out = torch.cat([batch["inputs"], batch["targets"][:, -1:]], dim=1)
    spans = text_spans(rows.numpy(), torch.tensor(sorted(SPECIAL.all)).numpy())
    assert [(s, e) for r, s, e in spans if r == 0] == [(1, 5), (7, 13)]
    flips = []
    for row, start, end in spans:
        text = rows[row, start:end]
        flipped = bool(draws[row, start] < 0.3)
        assert torch.equal(out[row, start:end], text.flip(0) if flipped else text)
        flips.append(flipped)
    assert 0 < sum(flips) < len(flips)  # both kinds occur in this batch
    specials = torch.isin(rows, torch.tensor(sorted(SPECIAL.all)))
    assert torch.equal(out[specials], rows[specials])


def test_fraction_zero_is_clm_and_the_batch_is_a_function_of_the_generator_seed():
    rows = _bio_rows(8)
    none = ReverseConfig(reverse_fraction=0.0).build(SPECIAL, 0, CONTEXT)
    batch = none.make_batch(rows, torch.Generator().manual_seed(0))
    assert torch.equal(batch["inputs"], rows[:, :-1])
    objective = ReverseConfig().build(SPECIAL, 0, CONTEXT)

    def inputs(seed: int) -> torch.Tensor:
        return objective.make_batch(rows, torch.Generator().manual_seed(seed))["inputs"]

    assert torch.equal(inputs(5), inputs(5)) and not torch.equal(inputs(5), inputs(6))


def test_entity_level_without_entities_refuses_or_falls_back_to_words_as_configured():
    bare = TextContext(TOKENIZER, ())
    with pytest.raises(ValueError, match=r"has none.*without_entities: words"):
        ReverseConfig().build(SPECIAL, 0, bare)
    assert reverse(BIO, "entity", bare, without_entities="words") == reverse(BIO, "word")
    with pytest.raises(ValueError, match="TextContext"):
        ReverseConfig().build(SPECIAL, 0)


def test_byte_level_bpe_words_start_at_a_space_and_keep_their_pieces_in_order():
    text = "Ann Marie Smith was born in New York. Ann Marie Smith studied Statistics."
    bpe = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), [text] * 20)
    assert len(bpe.encode(" Statistics")) > 1  # a word of several pieces
    objective = ReverseConfig(reverse_fraction=1.0, unit="word").build(
        bpe.special, 0, TextContext(bpe, ())
    )
    row = torch.tensor([[bpe.special.bos, *bpe.encode(text), bpe.special.eos]])
    batch = objective.make_batch(row, torch.Generator())
    reversed_text = bpe.decode(batch["inputs"][0, 1:].tolist())
    assert (
        reversed_text
        == ". Statistics studied Smith Marie Ann. York New in born was Smith Marie Ann"
    )


# ------------------------------------------------------------------------- the bios world
def test_bios_declares_every_full_name_and_attribute_value_of_its_corpus():
    world = BiosConfig(num_people=8).build()
    entities = world.entities()
    values = {v for a in ATTRIBUTES for v in world.corpus_values(a)}
    assert set(entities) == {p.full_name for p in world.people} | values
    corpus = " ".join(world.documents())
    assert all(entity in corpus for entity in entities)


def test_a_tiny_bios_run_reverses_whole_names_and_resumes_bit_for_bit(tiny_config):
    settings = ("objective=reverse", "trainer.log_interval=2")
    cfg = tiny_config("name=full", *settings)
    data = prepare_data(cfg)
    context = text_context(cfg, data.tokenizer_path)
    person = cfg.world.build().people[0]
    assert person.full_name in context.entities
    objective = cfg.objective.build(data.special, data.vocab_size, context)
    doc = f"{person.full_name} was born in {person.birth_city}."
    ids = [data.special.bos, *context.tokenizer.encode(doc), data.special.eos]
    tokens = (
        ReverseConfig(reverse_fraction=1.0)
        .build(data.special, 0, context)
        .make_batch(torch.tensor([ids]), torch.Generator())["inputs"]
    )
    assert context.tokenizer.decode(tokens[0, 1:].tolist()) == (
        f". {person.birth_city} in born was {person.full_name}"
    )
    assert objective.attention == "causal"
    full = train(cfg)
    first = train(tiny_config("name=split", *settings), stop_after=3)
    resumed = train(tiny_config("name=split", *settings), resume=True)
    assert first.interrupted and resumed.steps == 8
    _assert_same_run(resumed, full)


def test_the_step_estimate_builds_the_objective_with_the_runs_text(
    tiny_config, tmp_path, monkeypatch
):
    # a cache of its own: the session's machine table stays as other estimate tests expect it
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config("objective=reverse")
    assert estimate.step_seconds(cfg) > 0
    stand_in = estimate._stand_in_tokenizer(50)
    assert stand_in.vocab_size == 50 and stand_in.special == SPECIAL
    objective = validate(RunConfig, {"objective": {"name": "reverse", "unit": "word"}}).objective
    rows = torch.randint(4, 50, (2, 9), generator=torch.Generator().manual_seed(0))
    built = objective.build(SPECIAL, 50, TextContext(stand_in))
    batch = built.make_batch(rows, torch.Generator().manual_seed(0))
    # every stand-in piece is a spaced word, so reversing words reverses tokens, nothing moved
    chosen = torch.rand((2, *rows.shape), generator=torch.Generator().manual_seed(0))[0][:, 0]
    expected = torch.stack([r.flip(0) if f else r for r, f in zip(rows, chosen < 0.5, strict=True)])
    assert torch.equal(batch["inputs"], expected[:, :-1]) and bool((chosen < 0.5).any())
