"""span_corruption: which tokens are noise, what the corrupted prefix and the targets are,
where the loss is, and that every row fits its window and reassembles the original."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transferlab.config import ConfigError, RunConfig, validate
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives import IGNORE_INDEX, SpanCorruption, SpanCorruptionConfig
from transferlab.objectives import span_corruption as span_corruption_module
from transferlab.objectives.span_corruption import chunk_length, needed_sentinels
from transferlab.objectives.spans import (
    SpanNoise,
    random_segmentation,
    random_spans_noise_mask,
    rolled_noise_mask,
    span_counts,
)

SPECIAL = SpecialTokenIds(pad=0, bos=1, eos=2, mask=3)
SPECIALS = torch.tensor(sorted(SPECIAL.all))
VOCAB = 50  # sentinels are 50, 51, ...
PROPERTY = settings(max_examples=80, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------- the noise mask
@pytest.mark.parametrize(
    ("n", "density", "span", "expected"),
    [
        (100, 0.15, 3.0, (15, 5)),
        (10, 0.15, 3.0, (2, 1)),  # round(1.5) = 2 noise tokens (half to even), one span
        (32, 0.5, 3.0, (16, 5)),
        (32, 0.15, 64.0, (5, 1)),  # at least one span
        (3, 0.1, 1.0, (1, 1)),  # at least one noise token
        (2, 0.9, 1.0, (1, 1)),  # at most n - 1 noise tokens, at most n - noise spans
        (10, 0.8, 1.0, (8, 2)),  # 8 spans would leave no kept token between them
        (1, 0.5, 1.0, (0, 0)),  # nothing to keep: no noise
    ],
)
def test_span_counts_round_as_t5(n, density, span, expected):
    tokens, spans = span_counts(torch.tensor(n), SpanNoise(density, span))
    assert (int(tokens), int(spans)) == expected


def test_segments_are_positive_and_add_up():
    gen = torch.Generator().manual_seed(0)
    for items, segments in [(1, 1), (5, 5), (9, 3), (20, 1)]:
        lengths = random_segmentation(items, segments, gen)
        assert len(lengths) == segments and int(lengths.sum()) == items
        assert bool((lengths >= 1).all())


def test_every_mask_of_the_counts_is_equally_likely_and_starts_kept_and_ends_noisy():
    """10 tokens, 3 noise in 2 spans: 2 ways to split the noise, 6 to split the 7 kept tokens
    into 2 segments, so 12 masks, each drawn about 1/12 of the time."""
    gen = torch.Generator().manual_seed(0)
    draws = [random_spans_noise_mask(10, SpanNoise(0.3, 1.5), gen) for _ in range(2400)]
    counts: dict[tuple[int, ...], int] = {}
    for mask in draws:
        counts[tuple(mask.int().tolist())] = counts.get(tuple(mask.int().tolist()), 0) + 1
    assert len(counts) == 12
    assert min(counts.values()) > 150 and max(counts.values()) < 250  # 200 expected
    for mask in counts:
        assert sum(mask) == 3 and not mask[0] and mask[-1]
        assert sum(a == 0 and b == 1 for a, b in zip(mask, mask[1:], strict=False)) == 2


# ----------------------------------------------------------------------------- the row
def test_a_row_is_the_corrupted_chunk_then_sentinels_and_spans(monkeypatch):
    """The mask (over the 10 regular tokens of the chunk) makes noise of 15 16 and 19 20; the
    first span crosses the document boundary (eos bos), which stays in the input and cuts it in
    two. The chunk kept room for a span wrapping around its end, unused here: padding."""
    window = torch.tensor([[1, 11, 12, 13, 14, 15, 2, 1, *range(16, 29)]])  # L + 1 = 21
    mask = torch.tensor([0, 0, 0, 0, 1, 1, 0, 0, 1, 1], dtype=torch.bool)
    monkeypatch.setattr(span_corruption_module, "rolled_noise_mask", lambda n, *_: mask)
    cfg = SpanCorruptionConfig(noise_density=0.4, mean_span_length=2.0)
    objective = cfg.build(SPECIAL, VOCAB)
    batch = objective.make_batch(window, torch.Generator())
    # Chunk of 13 tokens, 10 regular: 4 noise in 2 spans, + 1 boundary + 1 wrap:
    # 13 + 2 * 4 = 21 (14 tokens would need 22).
    prefix = [1, 11, 12, 13, 14, 50, 2, 1, 51, 17, 18, 52]
    spans = [50, 15, 51, 16, 52, 19, 20]
    assert batch["prefix_len"].tolist() == [12]
    assert batch["inputs"].tolist() == [[*prefix, *spans, 0]]
    assert batch["targets"].tolist() == [[IGNORE_INDEX] * 11 + spans + [IGNORE_INDEX] * 2]
    assert objective.n_targets(batch) == 7


def test_a_span_that_wraps_around_the_chunk_is_two_spans(monkeypatch):
    """Default density, span length 4: 15 tokens (12 regular: 2 noise in 1 span, + 1 boundary
    + 1 wrap: 15 + 2 * 3 = 21); the span wraps: the first and the last regular token."""
    window = torch.tensor([[1, 11, 12, 13, 14, 15, 2, 1, *range(16, 29)]])
    ends = lambda n, *_: (torch.arange(n) == 0) | (torch.arange(n) == n - 1)  # noqa: E731
    monkeypatch.setattr(span_corruption_module, "rolled_noise_mask", ends)
    objective = SpanCorruptionConfig(mean_span_length=4.0).build(SPECIAL, VOCAB)
    batch = objective.make_batch(window, torch.Generator())
    prefix = [1, 50, 12, 13, 14, 15, 2, 1, 16, 17, 18, 19, 20, 21, 51]
    assert batch["prefix_len"].tolist() == [15]
    assert batch["inputs"].tolist() == [[*prefix, 50, 11, 51, 22, 0]]
    assert batch["targets"].tolist() == [
        [IGNORE_INDEX] * 14 + [50, 11, 51, 22] + [IGNORE_INDEX] * 2
    ]


def test_the_chunk_is_the_longest_that_fits_with_a_span_per_boundary_and_the_wrap():
    noise = SpanNoise(0.4, 2.0)
    regular = ~torch.isin(torch.tensor([1, 11, 12, 13, 14, 15, 2, 1, *range(16, 29)]), SPECIALS)
    assert chunk_length(regular, 21, noise, 100) == 13  # 14 would need 14 + 2 * 4 = 22
    # With at most 3 sentinels: 10 tokens (7 regular: 2 spans) + 1 boundary + 1 wrap = 4.
    assert chunk_length(regular, 21, noise, 3) == 9
    # With 2: the chunk stops before the first regular token after the boundary.
    assert chunk_length(regular, 21, noise, 2) == 8
    # Without boundaries: 13 + 2 * (2 + 1) = 19; 14 tokens: 6 noise in 3 spans, 14 + 8 = 22.
    assert chunk_length(torch.ones(21, dtype=torch.bool), 21, noise, 100) == 13
    assert needed_sentinels(20, noise) == 3
    assert needed_sentinels(128, SpanNoise(0.15, 3.0)) == 7


def test_a_rolled_mask_puts_a_single_span_anywhere():
    """T5's mask of one span is always the last tokens; rolled, the span starts (cyclically)
    at each of the 10 positions about equally often."""
    gen = torch.Generator().manual_seed(0)
    noise = SpanNoise(0.2, 3.0)  # 10 tokens: 2 noise, 1 span
    assert [int(v) for v in span_counts(torch.tensor(10), noise)] == [2, 1]
    assert random_spans_noise_mask(10, noise, gen).tolist() == [False] * 8 + [True] * 2
    starts = torch.zeros(10, dtype=torch.long)
    for _ in range(2000):
        mask = rolled_noise_mask(10, 2, 1, gen)
        assert int(mask.sum()) == 2
        starts[int((mask & ~mask.roll(1)).nonzero()[0])] += 1
    assert int(starts.min()) > 150 and int(starts.max()) < 250  # 200 expected


def _strip(window: torch.Tensor, batch: dict, n_lead: int, k: int) -> tuple[list, list]:
    """Row ``k``'s corrupted input (after the lead token) and its target tokens."""
    prefix_len = int(batch["prefix_len"][k])
    row = torch.cat([batch["inputs"][k], torch.tensor([SPECIAL.pad])])
    loss = batch["targets"][k] != IGNORE_INDEX
    row[1:][loss] = batch["targets"][k][loss]  # the row's last token is only ever a target
    n_targets = int(loss.sum())
    return row[n_lead:prefix_len].tolist(), row[prefix_len : prefix_len + n_targets].tolist()


def _windows(draw, rows: int, length: int) -> torch.Tensor:
    tokens = draw(
        st.lists(
            st.lists(
                st.one_of(st.integers(4, VOCAB - 1), st.sampled_from([0, 1, 2])),
                min_size=length,
                max_size=length,
            ),
            min_size=rows,
            max_size=rows,
        )
    )
    return torch.tensor(tokens)


@st.composite
def _cases(draw):
    rows, length = draw(st.integers(1, 4)), draw(st.integers(4, 48))
    noise = SpanNoise(draw(st.floats(0.05, 0.9)), draw(st.floats(1.0, 10.0)))
    return _windows(draw, rows, length), noise, draw(st.integers(1, 12)), draw(st.booleans())


@PROPERTY
@given(case=_cases(), seed=st.integers(0, 2**16))
def test_every_row_reassembles_its_chunk_and_fits_its_window(case, seed):
    window, noise, max_sentinels, with_lead = case
    sentinels = torch.arange(VOCAB, VOCAB + max_sentinels)
    lead = 99 if with_lead else None
    objective = SpanCorruption(noise, SPECIAL, sentinels, lead=lead)
    batch = objective.make_batch(window, torch.Generator().manual_seed(seed))
    n_lead, width = int(with_lead), window.shape[1]
    assert batch["inputs"].shape == batch["targets"].shape == (len(window), width - 1)
    for k in range(len(window)):
        corrupted, target = _strip(window, batch, n_lead, k)
        if with_lead:
            assert int(batch["inputs"][k, 0]) == lead
        if int(batch["prefix_len"][k]) == width:  # under 2 regular tokens: no noise, no loss
            assert int((~torch.isin(window[k, : width - n_lead], SPECIALS)).sum()) < 2
            assert batch["inputs"][k, n_lead:].tolist() == window[k, : width - 1 - n_lead].tolist()
            assert bool((batch["targets"][k] == IGNORE_INDEX).all())
            continue
        # The loss is exactly on the targets, which directly follow the prefix.
        prefix_len = int(batch["prefix_len"][k])
        loss_at = batch["targets"][k] != IGNORE_INDEX
        expected = torch.arange(width - 1) >= prefix_len - 1
        expected &= torch.arange(width - 1) < prefix_len - 1 + len(target)
        assert torch.equal(loss_at, expected)
        # Targets: sentinel 0, its span, sentinel 1, its span, ... each span non-empty.
        used = [t for t in target if t >= VOCAB]
        assert used == list(range(VOCAB, VOCAB + len(used))) and len(used) <= max_sentinels
        assert (
            (not target or target[0] == VOCAB)
            and all(a < VOCAB for a, b in zip(target, target[1:], strict=False) if b >= VOCAB)
            and (not target or target[-1] < VOCAB)
        )
        spans: dict[int, list[int]] = {}
        for token in target:
            if token >= VOCAB:
                spans[token] = []
            else:
                spans[next(reversed(spans))].append(token)
        # No special token is ever noise.
        assert not any(t in SPECIAL.all for span in spans.values() for t in span)
        # The prefix holds the same sentinels, once each, in order; reassembled: the chunk.
        assert [t for t in corrupted if t >= VOCAB] == used
        reassembled = [t for c in corrupted for t in (spans[c] if c >= VOCAB else [c])]
        chunk = window[k, : len(reassembled)]
        assert reassembled == chunk.tolist()
        regular = ~torch.isin(window[k], SPECIALS)
        assert len(reassembled) == chunk_length(regular, width - n_lead, noise, max_sentinels)
        n_noise = span_counts(regular[: len(reassembled)].sum(), noise)[0]
        assert len(target) - len(used) == int(n_noise)
        # The rest of the row is padding.
        assert n_lead + len(corrupted) + len(target) <= width
        assert bool((batch["inputs"][k, n_lead + len(corrupted) + len(target) :] == 0).all())


def test_the_noise_share_and_span_length_match_the_config_over_many_rows():
    """Windows of documents of 20 tokens (bos ... eos): the noise is 15% of the regular tokens
    of the chunks; cuts at boundaries make spans a little shorter than 3 on average."""
    gen = torch.Generator().manual_seed(0)
    docs = torch.randint(4, VOCAB, (4000, 20), generator=gen)
    docs[:, 0], docs[:, -1] = SPECIAL.bos, SPECIAL.eos
    window = docs.reshape(500, 160)[:, :129]
    objective = SpanCorruptionConfig().build(SPECIAL, VOCAB)
    batch = objective.make_batch(window, torch.Generator().manual_seed(1))
    n_noise = n_regular = n_spans = 0
    for k in range(len(window)):
        corrupted, target = _strip(window, batch, 0, k)
        spans = sum(t >= VOCAB for t in target)
        chunk = len(corrupted) - spans + len(target) - spans
        n_regular += int((~torch.isin(window[k, :chunk], SPECIALS)).sum())
        n_noise += len(target) - spans
        n_spans += spans
    assert n_noise / n_regular == pytest.approx(0.15, abs=0.005)
    assert 2.5 < n_noise / n_spans < 3.0


def test_the_draw_is_a_pure_function_of_the_generator_seed():
    window = torch.randint(4, VOCAB, (4, 33), generator=torch.Generator().manual_seed(0))
    objective = SpanCorruptionConfig().build(SPECIAL, VOCAB)
    a, b, c = (objective.make_batch(window, torch.Generator().manual_seed(s)) for s in (5, 5, 6))
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert not torch.equal(a["targets"], c["targets"])


# ----------------------------------------------------------------------------- the config
def test_sentinels_are_added_tokens_after_the_vocabulary():
    cfg = SpanCorruptionConfig(num_sentinels=3)
    assert cfg.added_tokens() == ("<extra_id_0>", "<extra_id_1>", "<extra_id_2>")
    assert cfg.build(SPECIAL, VOCAB).sentinel_ids.tolist() == [50, 51, 52]
    assert cfg.attention == "prefix"


def test_too_few_sentinels_for_the_sequence_length_are_refused_at_validation():
    run = {"objective": {"name": "span_corruption", "num_sentinels": 6}}
    validate(RunConfig, {**run, "data": {"seq_len": 100}})  # needs 6
    with pytest.raises(
        ConfigError,
        match="at data.seq_len=128 needs 7 sentinels per row but "
        "num_sentinels=6; set num_sentinels to at least 7 or lower data.seq_len",
    ):
        validate(RunConfig, run)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("noise_density", 0.0, "greater than 0"),
        ("noise_density", 1.0, "less than 1"),
        ("mean_span_length", 0.5, "greater than or equal to 1"),
        ("num_sentinels", 0, "greater than or equal to 1"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(field, value, message):
    with pytest.raises(ConfigError, match=f"objective.*{field}.*{message}"):
        validate(RunConfig, {"objective": {"name": "span_corruption", field: value}})
