"""Tokenizers trained with Hugging Face ``tokenizers``: byte-level BPE and word level.

Both kinds round-trip exactly: ``decode(encode(text)) == text`` for any text (BPE) or for any text
whose pieces are in the vocabulary (word level; the training corpus when ``vocab_size`` does not cap
it). Word level gets this from a pre-tokenizer that keeps whitespace inside the pieces (``" Lynn"``,
``","``, ``"\\n\\n"``) and a decoder that concatenates them. The special tokens ``<pad>``, ``<bos>``,
``<eos>`` and ``<mask>`` are ids 0..3 of every tokenizer trained here; word level adds ``<unk>``
as id 4.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from transferlab.config.schemas import TokenizerConfig

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<mask>")
UNK_TOKEN = "<unk>"
BYTE_ALPHABET_SIZE = 256

# A word-level piece: a run of letters/digits or one punctuation mark, each with at most one
# leading space, or a run of whitespace. A whitespace run before a word leaves its last space to
# that word (the lookahead), so single spaces never become tokens of their own.
WORD_PIECE = r" ?[\p{L}\p{M}\p{N}]+| ?[^\s\p{L}\p{M}\p{N}]|\s+(?!\S)|\s+"


@dataclass(frozen=True)
class SpecialTokenIds:
    pad: int = 0
    bos: int = 1
    eos: int = 2
    mask: int = 3

    @property
    def all(self) -> tuple[int, ...]:
        return (self.pad, self.bos, self.eos, self.mask)


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with the special tokens transferlab needs, found by name."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.special = SpecialTokenIds(*(self._special_id(tok) for tok in SPECIAL_TOKENS))

    def _special_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(
                f"tokenizer has no {token!r} token; add {', '.join(SPECIAL_TOKENS)} as special "
                "tokens (a tokenizer trained by transferlab has them)"
            )
        return token_id

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many texts at once (the Rust side parallelizes over them)."""
        encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [enc.ids for enc in encodings]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)

    def save(self, path: str | Path) -> None:
        self.tokenizer.save(str(path))

    @classmethod
    def from_file(cls, path: str | Path) -> TextTokenizer:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"tokenizer file {str(path)!r} does not exist; pass a tokenizer.json")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust error type is not importable; re-raise as one line
            msg = str(exc).splitlines()[0]
            raise ValueError(f"{path}: not a Hugging Face tokenizer.json ({msg})") from None
        return cls(tokenizer)


def train_tokenizer(cfg: TokenizerConfig, texts: Iterable[str]) -> TextTokenizer:
    """Train a ``cfg.kind`` tokenizer of at most ``cfg.vocab_size`` tokens on ``texts``."""
    if cfg.kind == "bpe":
        tokenizer, trainer = _bpe(cfg)
    else:
        tokenizer, trainer = _word_level(cfg)
    tokenizer.train_from_iterator(texts, trainer)
    return TextTokenizer(tokenizer)


def write_tokenizer(
    cfg: TokenizerConfig, tokenizer_file: str | None, texts: Callable[[], Iterable[str]], path: Path
) -> TextTokenizer:
    """Write a corpus's tokenizer to ``path`` and return it: a byte-for-byte copy of
    ``tokenizer_file`` when given (a corpus read with another run's token ids, which the
    bytes identify), else a ``cfg`` tokenizer trained on ``texts()``."""
    if tokenizer_file is None:
        tokenizer = train_tokenizer(cfg, texts())
        tokenizer.save(path)
        return tokenizer
    tokenizer = TextTokenizer.from_file(tokenizer_file)
    shutil.copyfile(tokenizer_file, path)
    return tokenizer


def _bpe(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    minimum = BYTE_ALPHABET_SIZE + len(SPECIAL_TOKENS)
    if cfg.vocab_size < minimum:
        raise ValueError(
            f"tokenizer.vocab_size={cfg.vocab_size} is too small for byte-level BPE; "
            f"set it to at least {minimum} (256 bytes + {len(SPECIAL_TOKENS)} special tokens)"
        )
    tokenizer = Tokenizer(models.BPE())
    # Byte level: every string maps to bytes the vocabulary covers, so any text round-trips.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer


def _word_level(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PIECE), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # pieces carry their own whitespace: concatenate them
    trainer = trainers.WordLevelTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[*SPECIAL_TOKENS, UNK_TOKEN],
        show_progress=False,
    )
    return tokenizer, trainer
