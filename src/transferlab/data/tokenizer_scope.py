"""Which texts train the tokenizer of a corpus of sources (``data.tokenizer_scope``).

``variant`` (the default) trains it on the domains the run mixes in: a domain of weight 0 takes
no part in the run, so variants whose weights differ may read text with different tokenizers.
``shared`` trains it on every domain of ``data.sources``, weight 0 or not, once: the tokenizer is
cached under ``cache_root()/tokenizers/<key>``, keyed by the sources and the tokenizer config
(training is deterministic), and each data stage copies it, so variants that list the same
sources and differ in weights compare with the same token ids. An experiment refuses ``shared``
variants whose source lists differ (see ``experiment.planner``).
"""

from __future__ import annotations

from pathlib import Path

from transferlab.artifacts import cache_root, cached_dir, content_key
from transferlab.config.schemas import RunConfig
from transferlab.data.sources import SourceConfig, iter_texts
from transferlab.data.tokenizer import train_tokenizer
from transferlab.file_digests import sources_fingerprint

FORMAT_VERSION = 1
TOKENIZER_FILE = "tokenizer.json"


def tokenizer_sources(cfg: RunConfig) -> list[SourceConfig]:
    """The sources whose texts train ``cfg``'s tokenizer, in source order."""
    if cfg.data.tokenizer_scope == "shared":
        return list(cfg.data.sources)
    left_out = set(cfg.data.left_out())
    return [s for s in cfg.data.sources if s.source_name not in left_out]


def shared_tokenizer_file(cfg: RunConfig) -> Path:
    """The tokenizer.json trained on every source of ``cfg.data.sources`` (trained on first use,
    one process at a time)."""
    sources = tokenizer_sources(cfg)
    key = content_key([s.to_dict() for s in sources], cfg.tokenizer.to_dict(), FORMAT_VERSION)
    if files := sources_fingerprint(sources):  # an edited corpus trains a new tokenizer
        key = content_key(key, files)

    def build(tmp: Path) -> None:
        train_tokenizer(cfg.tokenizer, iter_texts(sources)).save(tmp / TOKENIZER_FILE)

    return cached_dir(cache_root() / "tokenizers" / key, build) / TOKENIZER_FILE
