"""Two real-text domains with no word in common, for the tests of per-domain callbacks
(``routing``, ``domain_loss``): 60 distinct texts of 20 words each, as jsonl sources."""

from __future__ import annotations

import json
import random
from pathlib import Path

PROSE = "the quick brown fox jumps over a lazy dog while birds sing in tall green trees"
CODE = "def return if else for in range x y z ( ) : = + - * 0 1 2 print"


def two_domains(folder: Path) -> list[str]:
    """Overrides that train on the two domains ``prose`` and ``code`` (written into ``folder``),
    holding out a tenth of each, with a word-level tokenizer."""
    paths = []
    for name, vocabulary in (("prose", PROSE), ("code", CODE)):
        path = folder / f"{name}.jsonl"
        words = vocabulary.split()
        with path.open("w") as f:
            for i in range(60):
                text = " ".join(random.Random(i).choices(words, k=20))
                f.write(json.dumps({"text": text}) + "\n")
        paths.append(f"{{name: jsonl, path: {path}, label: {name}}}")
    return [
        f"data.sources=[{', '.join(paths)}]",
        "data.val_fraction=0.1",
        "tokenizer.kind=word",
    ]
