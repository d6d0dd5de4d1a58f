"""The `modular` world: equations ``a o b = c`` modulo a prime, the setting of grokking.

Modelled on Power et al. 2022 ("Grokking") and Nanda et al. 2023 ("Progress measures for
grokking"). Every pair ``(a, b)`` of residues modulo ``prime`` (``b != 0`` for division) is one
equation; a seeded shuffle puts ``train_fraction`` of them in the pretraining corpus and splits
the rest into a validation and a test split (``validation_fraction`` of the held-out pairs go
to validation). The three splits are disjoint; no validation or test pair is ever a corpus
document.

Text. An equation is written without spaces, ``"12+5=17"``, so the word-level tokenizer cuts
it into ``12``, ``+``, ``5``, ``=``, ``17``: every residue is one token, the same token as an
operand and as an answer (a piece with a leading space would be another token), and the answer
is the single token after ``=``. ``residue_token_ids`` checks this for a tokenizer.

Corpus layout. A tokenized equation is ``<bos> a o b = c <eos>``, 7 tokens, so with
``data.seq_len: 7`` every packed window holds exactly one equation. The loader cuts windows of
``seq_len + 1`` tokens overlapping by one, so the stream's last document only supplies the last
window's final target (the ``<bos>`` that opens it); the corpus therefore closes with a repeat
of its first equation, which keeps every training equation in a window of its own. A full
batch (``trainer.batch_size`` = ``train_pairs``) then holds each training equation exactly once
(``tests/test_worlds_modular.py`` checks this through the loader).

Validation. ``validation_documents(count)`` gives the first ``count`` validation-split
equations, so the trainer's ``val_loss`` is the held-out loss on pairs the model never saw.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field, model_validator

from transferlab.config.registry import WORLDS
from transferlab.config.schemas import WorldConfig
from transferlab.worlds.base import World

Operation = Literal["add", "subtract", "multiply", "divide", "x2_xy_y2"]
Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
EQUALS = "="  # the marker the answer follows (what ``equation_lm`` trains on)

# Each operation's symbol (one punctuation character, so one token) and its value mod p.
SYMBOLS: dict[str, str] = {
    "add": "+",
    "subtract": "-",
    "multiply": "*",
    "divide": "/",
    "x2_xy_y2": "∘",
}


def _apply(operation: str, a: int, b: int, p: int) -> int:
    if operation == "add":
        return (a + b) % p
    if operation == "subtract":
        return (a - b) % p
    if operation == "multiply":
        return (a * b) % p
    if operation == "divide":  # a * b^-1, b^-1 by Fermat's little theorem (p prime)
        return (a * pow(b, p - 2, p)) % p
    return (a * a + a * b + b * b) % p


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


@WORLDS.register("modular")
class ModularConfig(WorldConfig):
    """Equations ``a o b = c`` modulo a prime, split into training, validation and test pairs.

    See the module docstring for the text, the corpus layout and the splits."""

    name: Literal["modular"] = "modular"
    operation: Operation = "add"  # add, subtract, multiply, divide (a * b^-1) or a^2+ab+b^2
    prime: int = Field(default=97, ge=3)  # the modulus p; must be prime
    # share of all p*p pairs (p*(p-1) for divide) in the pretraining corpus
    train_fraction: float = Field(default=0.3, gt=0, lt=1)
    # share of the held-out pairs in the validation split; the rest are the test split
    validation_fraction: float = Field(default=0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _splits_are_possible(self) -> ModularConfig:
        if not _is_prime(self.prime):
            raise ValueError(f"prime={self.prime} is not prime; use a prime such as 31, 59 or 97")
        counts = split_sizes(self)
        empty = [split for split, n in counts.items() if n == 0]
        if empty:
            raise ValueError(
                f"prime={self.prime} with train_fraction={self.train_fraction} and "
                f"validation_fraction={self.validation_fraction} leaves the {empty[0]} split "
                "empty; use a larger prime or fractions further from 0 and 1"
            )
        return self

    def build(self) -> ModularWorld:
        return ModularWorld(self)


def pair_count(cfg: ModularConfig) -> int:
    """How many equations the operation has: p*p, or p*(p-1) for division (no b = 0)."""
    return cfg.prime * (cfg.prime - 1 if cfg.operation == "divide" else cfg.prime)


def split_sizes(cfg: ModularConfig) -> dict[str, int]:
    """Equations per split: ``round(train_fraction * pairs)`` for training, the held-out rest
    split by ``round(validation_fraction * held_out)``."""
    total = pair_count(cfg)
    train = round(cfg.train_fraction * total)
    validation = round(cfg.validation_fraction * (total - train))
    return {"train": train, "validation": validation, "test": total - train - validation}


@dataclass(frozen=True)
class Equation:
    a: int
    b: int
    answer: int
    symbol: str
    split: Split

    @property
    def id(self) -> str:
        """Names the example in result rows, the same in every run of the world."""
        return f"{self.a}{self.symbol}{self.b}"

    @property
    def prompt(self) -> str:
        """The text before the answer: ``"12+5="``."""
        return f"{self.a}{self.symbol}{self.b}{EQUALS}"

    @property
    def text(self) -> str:
        return f"{self.prompt}{self.answer}"


class Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def token_to_id(self, token: str) -> int | None: ...


class ModularWorld(World):
    def __init__(self, cfg: ModularConfig) -> None:
        self.cfg = cfg

    @cached_property
    def equations(self) -> dict[Split, list[Equation]]:
        """Each split's equations in corpus order (a seeded shuffle of all pairs)."""
        cfg = self.cfg
        symbol, p = SYMBOLS[cfg.operation], cfg.prime
        first_b = 1 if cfg.operation == "divide" else 0
        pairs = [(a, b) for a in range(p) for b in range(first_b, p)]
        random.Random(f"modular-{cfg.seed}").shuffle(pairs)
        sizes = split_sizes(cfg)
        bounds = {"train": (0, sizes["train"])}
        bounds["validation"] = (sizes["train"], sizes["train"] + sizes["validation"])
        bounds["test"] = (bounds["validation"][1], len(pairs))
        return {
            split: [
                Equation(a, b, _apply(cfg.operation, a, b, p), symbol, split)
                for a, b in pairs[start:stop]
            ]
            for split, (start, stop) in bounds.items()
        }

    def documents(self) -> list[str]:
        """The training equations, closed by a repeat of the first (see the module docstring:
        the loader reads the last document only as a final target)."""
        texts = [eq.text for eq in self.equations["train"]]
        return [*texts, texts[0]]

    def validation_documents(self, count: int) -> list[str]:
        return [eq.text for eq in self.equations["validation"][:count]]

    def tokenizer_texts(self) -> list[str]:
        """The corpus plus every residue alone, so each residue has its token even when no
        training equation shows it (a tiny train_fraction)."""
        return [*self.documents(), *(str(r) for r in range(self.cfg.prime))]

    def write(self, out_dir: Path) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "equations.jsonl").open("w") as f:
            for split in SPLITS:
                for eq in self.equations[split]:
                    record = {"a": eq.a, "b": eq.b, "answer": eq.answer, "split": split}
                    f.write(json.dumps(record) + "\n")
        meta: dict[str, Any] = {"config": self.cfg.to_dict(), "splits": split_sizes(self.cfg)}
        (out_dir / "world.json").write_text(json.dumps(meta, indent=2))


def residue_token_ids(tokenizer: Encoder, prime: int) -> list[int]:
    """The token id of each residue ``0 .. prime - 1``; a one-line error when a residue is not
    exactly one token of its own (the answer must be the single token after ``=``; an unknown
    residue would be the one ``<unk>`` token, which is not its own)."""
    ids = []
    for r in range(prime):
        own, encoded = tokenizer.token_to_id(str(r)), tokenizer.encode(str(r))
        if own is None or encoded != [own]:
            raise ValueError(
                f"residue {r} is not one token of its own under this tokenizer (it encodes to "
                f"{encoded}); the modular world needs one per residue: use tokenizer.kind=word"
            )
        ids.append(own)
    return ids
