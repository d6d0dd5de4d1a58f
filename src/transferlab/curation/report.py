"""What a curation run did, stage by stage: counts, reasons and samples of removed documents.

``StageStats`` is filled while documents stream through a stage; the whole ``CurationReport``
is saved as ``curation_stats.json`` in the output directory, where ``inspect`` reads it back and
``print_report`` shows it. Its ``tokens`` are whitespace-separated words (``count_tokens``),
shown as words.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transferlab.curation.documents import count_tokens
from transferlab.data.sources import TextDocument

STATS_FILE = "curation_stats.json"


@dataclass
class Tally:
    """Documents, tokens and characters of a stream."""

    documents: int = 0
    tokens: int = 0
    chars: int = 0

    def add(self, text: str) -> None:
        self.documents += 1
        self.tokens += count_tokens(text)
        self.chars += len(text)


@dataclass
class RemovedSample:
    """A removed document, its text cut to the report's sample length."""

    source: str
    id: str
    reason: str
    tokens: int
    text: str
    duplicate_of: str | None = None  # "source/id" of the kept document a duplicate repeats
    score: float | None = None  # perplexity or classifier score


class SampleReservoir:
    """A uniform sample of ``size`` items of a stream (reservoir sampling, seeded), returned in
    stream order."""

    def __init__(self, size: int, seed: int | str) -> None:
        self.size = size
        self._rng = random.Random(str(seed))
        self._seen = 0
        self._items: list[tuple[int, Any]] = []

    def offer(self, item: Any) -> None:
        if len(self._items) < self.size:
            self._items.append((self._seen, item))
        else:
            slot = self._rng.randrange(self._seen + 1)
            if slot < self.size:
                self._items[slot] = (self._seen, item)
        self._seen += 1

    def items(self) -> list[Any]:
        return [item for _, item in sorted(self._items, key=lambda pair: pair[0])]


@dataclass
class ModifiedSample:
    """A document a stage kept but rewrote (C4 drops lines), before and after, each cut to the
    report's sample length."""

    source: str
    id: str
    tokens_before: int
    tokens_after: int
    before: str
    after: str


@dataclass
class StageStats:
    """One stage (a filter, a deduplication, a model-based filter): documents in and removed,
    tokens and characters removed (C4 also trims documents it keeps: ``docs_modified``, with
    ``modified_samples``), the count per removal reason, samples of removed documents, and
    stage details (thresholds, score files)."""

    name: str
    kind: str  # "filter", "dedup" or "score"
    docs_in: int = 0
    tokens_in: int = 0
    docs_removed: int = 0
    tokens_removed: int = 0
    chars_removed: int = 0
    docs_modified: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    samples: list[RemovedSample] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    modified_samples: list[ModifiedSample] = field(default_factory=list)

    @property
    def docs_out(self) -> int:
        return self.docs_in - self.docs_removed

    def top_reasons(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` reasons that removed the most documents, most first (ties by name):
        ``curation_stats.json`` stores ``reasons`` with its keys sorted by name."""
        return sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


class StageRecorder:
    """Fills a ``StageStats`` from the stream: ``seen`` for every document entering the stage,
    ``removed`` or ``trimmed`` for what it does to it."""

    def __init__(
        self, name: str, kind: str, sample_size: int, sample_chars: int, seed: int
    ) -> None:
        self.stats = StageStats(name, kind)
        self._reasons: Counter[str] = Counter()
        self._samples = SampleReservoir(sample_size, f"{seed}:{name}")
        self._modified = SampleReservoir(sample_size, f"{seed}:{name}:modified")
        self._sample_chars = sample_chars

    def seen(self, doc: TextDocument) -> None:
        self.stats.docs_in += 1
        self.stats.tokens_in += count_tokens(doc.text)

    def removed(
        self,
        doc: TextDocument,
        reason: str,
        duplicate_of: str | None = None,
        score: float | None = None,
    ) -> None:
        tokens = count_tokens(doc.text)
        self.stats.docs_removed += 1
        self.stats.tokens_removed += tokens
        self.stats.chars_removed += len(doc.text)
        self._reasons[reason] += 1
        text = doc.text[: self._sample_chars]
        self._samples.offer(
            RemovedSample(doc.source, doc.id, reason, tokens, text, duplicate_of, score)
        )

    def trimmed(self, doc: TextDocument, after: str) -> None:
        """``doc`` was kept with its text rewritten to ``after``."""
        before, cut = doc.text, self._sample_chars
        tokens_before, tokens_after = count_tokens(before), count_tokens(after)
        self.stats.docs_modified += 1
        self.stats.tokens_removed += tokens_before - tokens_after
        self.stats.chars_removed += len(before) - len(after)
        self._modified.offer(
            ModifiedSample(
                doc.source, doc.id, tokens_before, tokens_after, before[:cut], after[:cut]
            )
        )

    def finish(self, **details: Any) -> StageStats:
        self.stats.reasons = dict(sorted(self._reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        self.stats.samples = self._samples.items()
        self.stats.modified_samples = self._modified.items()
        self.stats.details.update(details)
        return self.stats


@dataclass
class CurationReport:
    """A whole run: input and output tallies, the stages in order, the config and the files."""

    input: Tally
    output: Tally
    stages: list[StageStats]
    config: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def stage(self, name: str) -> StageStats:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r}; stages: {[s.name for s in self.stages]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CurationReport:
        stages = []
        for stage in data["stages"]:
            samples = [RemovedSample(**s) for s in stage["samples"]]
            # Absent from reports written before rewrites were sampled.
            modified = [ModifiedSample(**s) for s in stage.get("modified_samples", [])]
            stages.append(StageStats(**{**stage, "samples": samples, "modified_samples": modified}))
        return cls(
            Tally(**data["input"]), Tally(**data["output"]), stages, data["config"], data["files"]
        )


def inspect(directory: str | Path) -> CurationReport:
    """The report of the curation output in ``directory``."""
    path = Path(directory) / STATS_FILE
    if not path.is_file():
        raise ValueError(
            f"{str(directory)!r} is not a curation output (no {STATS_FILE}); pass the output "
            "directory of a curation run"
        )
    return CurationReport.from_dict(json.loads(path.read_text()))
