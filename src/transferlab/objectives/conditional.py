"""Conditional training (Korbak et al. 2023, "Pretraining Language Models with Human
Preferences"): each segment of the text is prefixed with a control token saying whether a
scorer finds it undesirable, so the model learns the text *given* its verdict and can be
sampled given ``<|good|>``.

A segment is a document (the text between ``<bos>`` and ``<eos>``) or a sentence (``segment:
sentence``, the paper's unit for toxicity and PII). The segment's text is decoded with the run's
tokenizer and scored; ``<|bad|>`` goes before it when ``score > threshold``, else ``<|good|>``
(a share ``drop_fraction`` of segments gets no token, as in the paper, so the model also knows
text without one). A window that opens inside a segment (its first token is text, not a special
token) starts with a segment of its own, the leading piece: the text before the first segment
start the window shows, scored as far as the window shows it, its token inserted at position 0,
so no text is trained on without the verdict that covers it. The control tokens are inserted into
the packed window, which is then cut back to its length (the tokens pushed past its end are not
trained on in this step), so every objective sees windows of the same shape.

What carries loss (clm otherwise; attention causal):

- Control tokens are inputs, never targets: the model is conditioned on them but does not learn
  to predict them, so the loss is over the text's tokens only (comparable with clm's) and the
  model never emits a control token when sampling. The paper's code keeps them as targets and
  bans both at generation instead; masking them here comes to the same samples without a ban.
- The window's last sentence, when its end is not in the window, carries no loss: its verdict
  was taken on the visible part only, which can miss undesirable text (a phone number cut in
  half), and training on it under ``<|good|>`` would teach the model to start such text given
  good. A sentence ends at ``<eos>`` or at a token ending in ``.``, ``!`` or ``?`` that is
  followed by a token starting with whitespace (so the dots of ``ann.smith@example.com`` end
  nothing). A window with no sentence end at all carries no loss.
- Symmetrically, the sentence a window opens in carries no loss: its start is not in the window
  (a window cannot tell that its first token starts a sentence, so it never counts as one), and
  the leading piece's verdict, taken on the visible part, could miss a phone number cut in half
  at the window's start. The leading piece's complete sentences are trained after its token;
  with ``segment: sentence`` the leading piece is that partial sentence alone (its token costs a
  position and conditions nothing trained) and every complete sentence has its own token.

Generation conditioned on good prompts with ``<bos><|good|>``: with ``segment: document`` that
one token speaks for the whole sample; with ``segment: sentence`` the model saw a control token
before every sentence, so a sample prefixed once is conditioned on its first sentence only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field

from transferlab.config.registry import OBJECTIVES, SCORERS
from transferlab.data.tokenizer import SpecialTokenIds, TextTokenizer
from transferlab.objectives.base import (
    IGNORE_INDEX,
    Attention,
    Batch,
    TokenPredictionConfig,
    TokenPredictionObjective,
)
from transferlab.objectives.context import TextContext
from transferlab.scorers.base import Scorer, ScorerConfig

GOOD_TOKEN = "<|good|>"
BAD_TOKEN = "<|bad|>"
SENTENCE_PUNCTUATION = (".", "!", "?")


@dataclass(frozen=True)
class Segment:
    """Source positions ``[start, stop)`` of one row's segment: one whose start the window
    shows, or the leading piece (``start`` 0) of a window that opens inside a segment."""

    row: int
    start: int
    stop: int


class ConditionalLM(TokenPredictionObjective):
    attention = "causal"

    def __init__(
        self, cfg: ConditionalConfig, special: SpecialTokenIds, tokenizer: TextTokenizer
    ) -> None:
        super().__init__(cfg.z_loss)
        self.cfg = cfg
        self.special = special
        self.scorer: Scorer = cfg.scorer.build()
        self.good, self.bad = (_token_id(tokenizer, token) for token in (GOOD_TOKEN, BAD_TOKEN))
        self.special_ids = {*special.all, self.good, self.bad}
        pieces = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
        self.ends_with_punctuation = [p.rstrip().endswith(SENTENCE_PUNCTUATION) for p in pieces]
        self.starts_with_space = [p[:1].isspace() for p in pieces]
        self.tokenizer = tokenizer

    def make_batch(self, source: torch.Tensor, generator: torch.Generator) -> Batch:
        rows = source.tolist()
        # One draw per position (used at a segment's start): the draws do not depend on the text.
        dropped = (torch.rand(source.shape, generator=generator) < self.cfg.drop_fraction).tolist()
        ends = [self._sentence_ends(row) for row in rows]
        segments = [s for b, row in enumerate(rows) for s in self._segments(b, row, ends[b])]
        texts = [self.tokenizer.decode(rows[s.row][s.start : s.stop]) for s in segments]
        scores = self.scorer.score_batch(texts)
        control: list[dict[int, int]] = [{} for _ in rows]
        for segment, score in zip(segments, scores, strict=True):
            if not dropped[segment.row][segment.start]:
                token = self.bad if score > self.cfg.threshold else self.good
                control[segment.row][segment.start] = token
        out = [self._conditioned(row, control[b], ends[b]) for b, row in enumerate(rows)]
        tokens = torch.tensor([tokens for tokens, _ in out], dtype=torch.long)
        trained = torch.tensor([mask for _, mask in out], dtype=torch.bool)
        targets = torch.where(trained[:, 1:], tokens[:, 1:], IGNORE_INDEX)
        return {"inputs": tokens[:, :-1], "targets": targets}

    def _sentence_ends(self, row: Sequence[int]) -> list[bool]:
        """Whether a sentence ends at each position: ``<eos>``, or sentence punctuation followed
        by ``<eos>`` or by a token that starts with whitespace (the last position cannot tell)."""
        eos, special = self.special.eos, self.special_ids
        ends = [token == eos for token in row]
        for i, (token, following) in enumerate(zip(row, row[1:], strict=False)):
            if token in special or not self.ends_with_punctuation[token]:
                continue
            ends[i] = following == eos or (
                following not in special and self.starts_with_space[following]
            )
        return ends

    def _segments(self, b: int, row: Sequence[int], ends: Sequence[bool]) -> list[Segment]:
        """The segments of ``row``: text right after a special token (a document's start), in
        sentence mode also text right after a sentence end, and the leading piece from position
        0 when the window opens in text."""
        sentences = self.cfg.segment == "sentence"
        segments, start = [], None
        for i, token in enumerate(row):
            if token in self.special_ids:
                if start is not None:
                    segments.append(Segment(b, start, i))
                start = None
                continue
            if i == 0 or row[i - 1] in self.special_ids or (sentences and ends[i - 1]):
                start = i
            if sentences and ends[i] and start is not None:
                segments.append(Segment(b, start, i + 1))
                start = None
        if start is not None:
            segments.append(Segment(b, start, len(row)))
        return segments

    def _conditioned(
        self, row: Sequence[int], control: dict[int, int], ends: Sequence[bool]
    ) -> tuple[list[int], list[bool]]:
        """The row with each control token before its segment, cut to the row's length, and
        whether each position is a target: not a control token, not pad, not in the leading
        sentence whose start the window does not show, nor in the trailing one whose end it
        does not show."""
        tokens, sources = [], []  # sources: the source position of each token, None: control
        for i, token in enumerate(row):
            if i in control:
                tokens.append(control[i])
                sources.append(None)
            tokens.append(token)
            sources.append(i)
        tokens, sources = tokens[: len(row)], sources[: len(row)]
        kept = [i for i in sources if i is not None]
        last_end = max((i for i in kept if ends[i]), default=-1)
        # Text at position 0 is inside a sentence whose start the window does not show: nothing
        # up to that sentence's end (included) is trained on.
        first_start = 0
        if row[0] not in self.special_ids:
            first_start = next((i + 1 for i, end in enumerate(ends) if end), len(row))
        trained = [
            i is not None and first_start <= i <= last_end and row[i] != self.special.pad
            for i in sources
        ]
        return tokens, trained


def _token_id(tokenizer: TextTokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:  # the trainer's run tokenizer always has them (added_tokens)
        raise ValueError(f"the run's tokenizer has no {token!r}; build it with run_tokenizer_json")
    return token_id


@OBJECTIVES.register("conditional")
class ConditionalConfig(TokenPredictionConfig):
    """Conditional training: each segment prefixed with ``<|good|>`` or ``<|bad|>`` by a
    scorer's verdict (see ``objectives.conditional``); sample given ``<|good|>``."""

    name: Literal["conditional"] = "conditional"
    attention: ClassVar[Attention] = "causal"
    needs_text: ClassVar[bool] = True
    scorer: SCORERS.type(ScorerConfig)  # what judges a segment, e.g. {name: pii}
    threshold: float = 0.0  # a segment scoring above it gets <|bad|>, else <|good|>
    segment: Literal["document", "sentence"] = "document"  # what one control token speaks for
    # share of segments left without a control token (the paper: 0.01)
    drop_fraction: float = Field(default=0.01, ge=0, lt=1)

    def added_tokens(self) -> tuple[str, ...]:
        return (GOOD_TOKEN, BAD_TOKEN)

    def generation_prefix(self) -> tuple[str, ...]:
        return (GOOD_TOKEN,)

    def build(
        self, special: SpecialTokenIds, vocab_size: int, text: TextContext | None = None
    ) -> ConditionalLM:
        if text is None:
            raise ValueError(
                "the conditional objective scores each segment's text; build it with a "
                "TextContext (objectives.context.text_context)"
            )
        return ConditionalLM(self, special, text.tokenizer)
