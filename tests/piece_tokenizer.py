"""A word-level tokenizer over a hand-made list of pieces, for tests that spell token sequences
by their text: piece ``i`` of the list is id ``i``, and a text encodes piece by piece exactly as
transferlab's word-level tokenizer splits it (``data.tokenizer.WORD_PIECE``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from transferlab.data.tokenizer import SPECIAL_TOKENS, UNK_TOKEN, WORD_PIECE, TextTokenizer


def piece_tokenizer(pieces: Sequence[str]) -> TextTokenizer:
    """The tokenizer of the special tokens (ids 0..3), ``<unk>`` (4), then ``pieces``."""
    vocab = {piece: i for i, piece in enumerate([*SPECIAL_TOKENS, UNK_TOKEN, *pieces])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PIECE), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens([*SPECIAL_TOKENS, UNK_TOKEN])
    return TextTokenizer(tokenizer)


def encode(tokenizer: TextTokenizer, text: str) -> list[int]:
    """``text``'s ids, refusing a piece the tokenizer lacks (a typo in a test)."""
    ids = tokenizer.encode(text)
    if tokenizer.token_to_id(UNK_TOKEN) in ids:
        raise ValueError(f"{text!r} holds a piece the test tokenizer lacks")
    return ids


def window(tokenizer: TextTokenizer, *parts: str | int, length: int) -> torch.Tensor:
    """One window row [length]: texts (encoded) and special ids in order, right-padded."""
    ids = [
        i for part in parts for i in ([part] if isinstance(part, int) else encode(tokenizer, part))
    ]
    if len(ids) > length:
        raise ValueError(f"{len(ids)} tokens do not fit a window of {length}")
    return torch.tensor(ids + [tokenizer.special.pad] * (length - len(ids)))
