"""What an objective that reads text (not only token ids) is given when it is built.

Most objectives need nothing but the special token ids and the vocabulary size. Some transform
the text a window holds: reversal at word or entity level needs to know where words and entity
names are, conditional training scores each segment's text. Such an objective sets
``ObjectiveConfig.needs_text`` and its ``build`` receives a ``TextContext``: the run's tokenizer
(with the objective's added tokens, ``objectives.tokens``) and the entity names the world
declares (``World.entities()``; none for real text). The context is built by the trainer (and
by anything else that builds the objective, such as the step-time estimate) from the run's
config alone, so it is the same in every process and on resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

if TYPE_CHECKING:
    from transferlab.config import RunConfig
    from transferlab.data.tokenizer import TextTokenizer


@dataclass(frozen=True)
class TextContext:
    tokenizer: TextTokenizer  # the run's tokenizer, the objective's added tokens included
    entities: tuple[str, ...] = ()  # entity names of the world (full names, cities, ...)


def text_context(cfg: RunConfig, data_tokenizer: Path) -> TextContext:
    """The context of ``cfg``'s objective: the run's tokenizer made from the data's tokenizer
    file, and the entities of ``cfg.world`` when the run trains on the world's corpus."""
    from transferlab.data.tokenizer import TextTokenizer
    from transferlab.objectives.tokens import run_tokenizer_json

    raw = run_tokenizer_json(data_tokenizer, cfg.objective).decode()
    tokenizer = TextTokenizer(Tokenizer.from_str(raw))
    on_world = not cfg.data.sources and cfg.data.path is None
    entities = tuple(cfg.world.build().entities()) if on_world else ()
    return TextContext(tokenizer, entities)
