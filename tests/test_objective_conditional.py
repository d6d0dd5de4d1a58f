"""Conditional training: which segment gets which control token, where it goes, what carries loss."""

from __future__ import annotations

import re

import pytest
import torch
from tokenizers import Tokenizer

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.config.schemas import TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.objectives import IGNORE_INDEX, ConditionalConfig
from transferlab.objectives.context import TextContext
from transferlab.objectives.tokens import run_tokenizer_json
from transferlab.train import load_run, train

PHONE = r"\d{3}-\d{4}"
DOCS = [
    "Ann was born in Rome. Her phone is 555-0147.",
    "Bo likes tea. Mail bo.li@x.com now!",
    "Cy ran. Cy called 555-0199 today.",
]


@pytest.fixture(scope="module")
def data_tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_tokenizer(TokenizerConfig(kind="word"), DOCS).save(path)
    return path


def _objective(data_tokenizer, **fields):
    cfg = ConditionalConfig(scorer={"name": "regex", "pattern": PHONE}, **fields)
    run = TextTokenizer(Tokenizer.from_str(run_tokenizer_json(data_tokenizer, cfg).decode()))
    base = TextTokenizer.from_file(data_tokenizer)
    return cfg.build(run.special, base.vocab_size, TextContext(run)), run


def _stream(run: TextTokenizer) -> list[int]:
    """The corpus as the loader packs it: ``<bos> doc <eos>`` back to back."""
    return [t for doc in DOCS for t in (run.special.bos, *run.encode(doc), run.special.eos)]


def _targets_text(run: TextTokenizer, targets: torch.Tensor) -> list[str]:
    return ["_" if t == IGNORE_INDEX else run.decode([t]) for t in targets.tolist()]


def test_sentences_get_bad_when_the_scorer_finds_a_phone_and_good_otherwise(data_tokenizer):
    objective, run = _objective(data_tokenizer, segment="sentence", drop_fraction=0.0)
    window = torch.tensor([_stream(run)[3:30]])  # opens mid-sentence in the first document
    batch = objective.make_batch(window, torch.Generator())
    assert run.decode(window[0].tolist()) == (
        " born in Rome. Her phone is 555-0147.<eos><bos>Bo likes tea. Mail bo.li@x.com now!"
    )
    # The window opens in text, so its leading piece (here the partial first sentence) gets a
    # token at position 0; a token goes right before each sentence whose start is shown (after
    # <bos>, or after a sentence end: punctuation followed by a space-led token; the dots of the
    # e-mail end nothing). The window keeps its length: the four tokens push "x.com now!" past
    # its end.
    assert run.decode(batch["inputs"][0].tolist()) == (
        "<|good|> born in Rome.<|bad|> Her phone is 555-0147.<eos><bos><|good|>Bo likes tea."
        "<|good|> Mail bo.li@"
    )
    assert batch["inputs"].shape == batch["targets"].shape == (1, 26)
    # Targets are the next tokens, none on a control token, none in the leading sentence whose
    # start the window does not show, none in the trailing sentence whose end it does not show.
    assert _targets_text(run, batch["targets"][0]) == [
        *["_"] * 5,
        *[" Her", " phone", " is", " 555", "-", "0147", "."],
        *["<eos>", "<bos>", "_", "Bo", " likes", " tea", ".", *["_"] * 7],
    ]
    assert objective.n_targets(batch) == 13
    # Four tokens more and the "!" is a sentence end (followed by <eos>): trained on.
    longer = objective.make_batch(torch.tensor([_stream(run)[3:34]]), torch.Generator())
    assert _targets_text(run, longer["targets"][0])[-10:] == [
        *[" Mail", " bo", ".", "li", "@", "x", ".", "com", " now", "!"],
    ]


def test_documents_get_one_token_after_bos_for_the_whole_document(data_tokenizer):
    objective, run = _objective(data_tokenizer, segment="document", drop_fraction=0.0)
    stream = _stream(run)
    window = torch.tensor([stream[0:37], stream[3:40]])
    batch = objective.make_batch(window, torch.Generator())
    assert run.decode(batch["inputs"][0].tolist()) == (
        "<bos><|bad|>Ann was born in Rome. Her phone is 555-0147.<eos><bos><|good|>Bo likes "
        "tea. Mail bo.li@x.com now!<eos><bos><|good|>Cy"
    )
    # A verdict reads the segment as far as the window shows it: the third document's phone is
    # past row 0's end (good there) but within row 1 (bad), though inserting the tokens pushes
    # it out of row 1 again. Row 1 opens inside the first document: its leading piece holds the
    # phone, so <|bad|> goes at the window's start, before it.
    assert run.decode(batch["inputs"][1].tolist()) == (
        "<|bad|> born in Rome. Her phone is 555-0147.<eos><bos><|good|>Bo likes tea. Mail "
        "bo.li@x.com now!<eos><bos><|bad|>Cy ran. Cy"
    )
    # Row 0 ends in a document whose first sentence is cut ("Cy ran"): from its <bos> on nothing
    # carries loss; before, everything but the control tokens does.
    targets = _targets_text(run, batch["targets"][0])
    assert targets[:3] == ["_", "Ann", " was"]
    assert targets[-6:] == ["!", "<eos>", "_", "_", "_", "_"]  # <bos>, <|good|>, "Cy", " ran"
    assert targets.count("_") == 6
    # Row 1: the sentence the window opens in carries no loss, the phone's sentence is trained
    # after <|bad|>, and the third document's first sentence after its own <|bad|>.
    targets = _targets_text(run, batch["targets"][1])
    assert targets[:11] == [*["_"] * 4, " Her", " phone", " is", " 555", "-", "0147", "."]
    assert targets[-7:] == ["<bos>", "_", "Cy", " ran", ".", "_", "_"]
    assert targets.count("_") == 8


def test_a_sentence_cut_at_the_window_start_carries_no_loss(data_tokenizer):
    """A phone cut in half at the window's start escapes the scorer: its sentence is not trained
    on, whatever the verdict. A window cannot tell that its first token starts a sentence, so a
    window opening right at one does not train it either."""
    objective, run = _objective(data_tokenizer, segment="document", drop_fraction=0.0)
    stream = _stream(run)
    cut = objective.make_batch(torch.tensor([stream[11:23]]), torch.Generator())
    assert run.decode(cut["inputs"][0].tolist()) == "<|good|>-0147.<eos><bos><|good|>Bo likes tea."
    assert _targets_text(run, cut["targets"][0]) == [
        *["_", "_", "_", "<eos>", "<bos>", "_", "Bo", " likes", " tea", ".", "_"]
    ]
    at_start = objective.make_batch(torch.tensor([stream[7:20]]), torch.Generator())
    assert run.decode(at_start["inputs"][0].tolist()) == (
        "<|bad|> Her phone is 555-0147.<eos><bos><|good|>Bo"
    )
    # Only <eos> is trained: the sentence before it is the leading one, and the one after it
    # ("Bo likes") does not end in the window.
    assert _targets_text(run, at_start["targets"][0]) == [*["_"] * 7, "<eos>", *["_"] * 4]


@pytest.mark.parametrize("segment", ["document", "sentence"])
def test_every_trained_text_token_follows_a_control_token_whose_verdict_covers_it(
    data_tokenizer, segment
):
    """In windows opening at every offset of the stream, each trained text token has a control
    token before it, and the text trained after a <|good|> holds no phone."""
    objective, run = _objective(data_tokenizer, segment=segment, drop_fraction=0.0)
    stream = _stream(run) * 2
    window = torch.tensor([stream[i : i + 24] for i in range(len(stream) // 2)])
    batch = objective.make_batch(window, torch.Generator())
    control = {objective.good, objective.bad}
    special = set(run.special.all)
    for inputs, targets in zip(batch["inputs"].tolist(), batch["targets"].tolist(), strict=True):
        trained: dict[int, list[int]] = {}  # control token position -> the text trained after it
        last = None
        for j, (token, target) in enumerate(zip(inputs, targets, strict=True)):
            last = j if token in control else last
            if target != IGNORE_INDEX and target not in special:
                assert last is not None, run.decode(inputs)
                trained.setdefault(last, []).append(target)
        for position, text in trained.items():
            if re.search(PHONE, run.decode(text)):
                assert inputs[position] == objective.bad, run.decode(inputs)
    assert objective.n_targets(batch) > 0


def test_the_verdict_is_score_above_threshold(data_tokenizer):
    """Document 3 holds one phone: bad at threshold 0, good at threshold 1."""
    stream = None
    verdicts = {}
    for threshold in (0.0, 1.0):
        objective, run = _objective(data_tokenizer, threshold=threshold, drop_fraction=0.0)
        stream = _stream(run)
        start = stream.index(run.encode("Cy")[0]) - 1
        batch = objective.make_batch(torch.tensor([stream[start:]]), torch.Generator())
        verdicts[threshold] = run.decode(batch["inputs"][0, :2].tolist())
    assert verdicts == {0.0: "<bos><|bad|>", 1.0: "<bos><|good|>"}


def _controlled(tokens: list[int], control: set[int]) -> list[int]:
    """The positions, in the window before the tokens were inserted, that follow a control token."""
    positions, source = [], 0
    for token in tokens:
        if token in control:
            positions.append(source)
        else:
            source += 1
    return positions


def test_a_segment_is_dropped_where_the_generator_draws_below_drop_fraction(data_tokenizer):
    objective, run = _objective(data_tokenizer, segment="sentence", drop_fraction=0.5)
    window = torch.tensor([_stream(run)] * 8)
    row = window[0].tolist()
    starts = [s.start for s in objective._segments(0, row, objective._sentence_ends(row))]
    assert [run.decode(row[s : s + 2]) for s in starts] == [
        "Ann was",
        " Her phone",
        "Bo likes",
        " Mail bo",
        "Cy ran",
        " Cy called",
    ]
    draws = torch.rand(window.shape, generator=torch.Generator().manual_seed(5))
    batch = objective.make_batch(window, torch.Generator().manual_seed(5))
    control = {objective.good, objective.bad}
    kept_rows = []
    for b in range(8):
        kept = [s for s in starts if draws[b, s] >= 0.5]
        shown = _controlled(batch["inputs"][b].tolist(), control)
        assert shown == kept[: len(shown)], b  # the last ones may be pushed past the end
        kept_rows.append(len(kept))
    assert 0 < sum(kept_rows) < 8 * len(starts)  # both kinds of draw happen here


def test_make_batch_is_a_function_of_the_window_and_the_generator_seed(data_tokenizer):
    objective, run = _objective(data_tokenizer, segment="sentence")
    window = torch.tensor([_stream(run)[i : i + 20] for i in range(0, 24, 3)])
    first = objective.make_batch(window, torch.Generator().manual_seed(1))
    again = objective.make_batch(window, torch.Generator().manual_seed(1))
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_config_errors_are_one_line_and_name_the_field():
    with pytest.raises(ConfigError, match=r"objective\.scorer: missing"):
        validate(RunConfig, {"objective": {"name": "conditional"}})
    with pytest.raises(ConfigError, match=r"objective\.segment"):
        validate(
            RunConfig,
            {
                "objective": {
                    "name": "conditional",
                    "scorer": {"name": "regex", "pattern": "x"},
                    "segment": "word",
                }
            },
        )
    with pytest.raises(ConfigError, match=r"drop_fraction.*less than 1"):
        validate(
            RunConfig,
            {
                "objective": {
                    "name": "conditional",
                    "scorer": {"name": "regex", "pattern": "x"},
                    "drop_fraction": 1.0,
                }
            },
        )


def test_building_without_the_text_context_is_refused(data_tokenizer):
    cfg = ConditionalConfig(scorer={"name": "regex", "pattern": PHONE})
    with pytest.raises(ValueError, match="scores each segment's text; build it with a TextContext"):
        cfg.build(TextTokenizer.from_file(data_tokenizer).special, 20)


CONDITIONAL_RUN = (
    "objective={name: conditional, scorer: {name: regex, pattern: '19[5-6][0-9]'}}",
    "trainer.log_interval=2",
)


def test_a_conditional_run_names_its_control_tokens_and_resumes_bit_for_bit(tiny_config):
    """Stopping at step 3 and resuming gives the uninterrupted run's metrics and weights."""
    full = train(tiny_config("name=full", *CONDITIONAL_RUN))
    first = train(tiny_config("name=split", *CONDITIONAL_RUN), stop_after=3)
    resumed = train(tiny_config("name=split", *CONDITIONAL_RUN), resume=True)
    assert first.steps == 3 and resumed.steps == full.steps == 8
    assert (resumed.train_loss, resumed.val_loss) == (full.train_loss, full.val_loss)
    run_full, run_resumed = load_run(full.run_dir), load_run(resumed.run_dir)
    for (name, x), (_, y) in zip(
        run_full.model.state_dict().items(), run_resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
    tokenizer = TextTokenizer.from_file(full.run_dir / "tokenizer.json")
    base = tokenizer.vocab_size - 2
    assert [tokenizer.token_to_id(t) for t in ("<|good|>", "<|bad|>")] == [base, base + 1]
    assert run_full.model.embed.weight.shape[0] == base + 2


def test_byte_level_bpe_finds_the_same_sentences(tmp_path):
    """Sentence ends come from the tokens' text, so a BPE tokenizer (whose pieces carry their
    leading space as 'Ġ') splits the corpus into the same sentences as the word tokenizer."""
    path = tmp_path / "bpe.json"
    train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), DOCS).save(path)
    objective, run = _objective(path, segment="sentence", drop_fraction=0.0)
    batch = objective.make_batch(torch.tensor([_stream(run)]), torch.Generator())
    text = run.decode(batch["inputs"][0].tolist())
    assert text.startswith(
        "<bos><|good|>Ann was born in Rome.<|bad|> Her phone is 555-0147.<eos><bos><|good|>Bo "
        "likes tea.<|good|> Mail bo.li@x.com now!<eos><bos><|good|>Cy ran.<|bad|> Cy called"
    )


def test_sampling_with_objective_prefix_conditions_a_conditional_run_on_good_only(tiny_config):
    """One sample_score config samples both runs: after <bos>, the conditional run's prompt has
    <|good|> (its objective's generation prefix), the clm run's nothing."""
    from transferlab.config import TASKS

    task = TASKS.parse(
        {"name": "sample_score", "scorer": {"name": "pii"}, "n_samples": 2,
         "max_new_tokens": 4, "objective_prefix": True}
    ).build()  # fmt: skip
    prompts = {}
    for name, objective in (("cond", CONDITIONAL_RUN[0]), ("plain", "objective=clm")):
        result = train(tiny_config(f"name={name}", objective, "trainer.max_steps=3"))
        run = load_run(result.run_dir)
        tokenizer = TextTokenizer.from_file(run.tokenizer_path)
        rows = task.run(run.model, tokenizer, None, name, 0, run_dir=result.run_dir)
        prompts[name] = {row["target"] for row in rows}
        assert len(rows) == 2
    assert prompts == {"cond": {"<bos><|good|>"}, "plain": {"<bos>"}}
    without_run = "objective_prefix reads the run's objective, and this model comes without"
    with pytest.raises(ValueError, match=without_run):
        task.run(run.model, tokenizer, None, "plain", 0)
