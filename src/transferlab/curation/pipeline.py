"""The curation pipeline: heuristic filters, deduplication and model-based filters over a stream.

Documents flow through the stages in order; each stage sees only what the previous ones kept:

1. the heuristic filters (``filters``, datatrove's rules), in the order given;
2. exact, then MinHash deduplication (``dedup``);
3. the model-based filters: ``perplexity`` (a percentile band), then ``classifier`` (a
   threshold). Both score every document that survived step 2, so their score files depend only
   on those documents: changing a band or a threshold reuses them (see ``scores``).

Steps 1-2 stream the input once into an intermediate file (only dedup's digests and signatures
stay in memory); step 3 reads it twice, once to score (unless the score files exist) and once to
select. The output directory, written atomically (complete or absent), holds::

    documents.jsonl.gz          the kept documents (see ``documents``)
    curation_stats.json         the ``CurationReport`` (``inspect`` reads it)
    scores/heuristics.parquet   source, id, and <filter>.kept / <filter>.reason per filter
                                (null where an earlier filter removed the document)
    scores/dedup.parquet        each duplicate: method, duplicate_of_source/_id, similarity
    scores/<scorer>.parquet     source, id, score of every document scored
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from transferlab.artifacts import atomic_dir, content_key, write_json_atomic
from transferlab.config.base import BaseConfig
from transferlab.curation.classifier import QualityClassifierConfig
from transferlab.curation.dedup import (
    DedupConfig,
    Duplicate,
    ExactDeduplicator,
    NearDuplicateDetector,
)
from transferlab.curation.documents import (
    FAST_LEVEL,
    FINAL_LEVEL,
    DocumentWriter,
    batched,
    read_documents,
)
from transferlab.curation.heuristics import FilterField, HeuristicFilter
from transferlab.curation.perplexity import PerplexityConfig
from transferlab.curation.report import (
    STATS_FILE,
    CurationReport,
    StageRecorder,
    StageStats,
    Tally,
)
from transferlab.curation.scores import (
    ParquetRows,
    default_scores_dir,
    ensure_score_file,
    read_scores,
)
from transferlab.curation.selection import ScoreFilter
from transferlab.data.sources import TextDocument

DOCUMENTS_FILE = "documents.jsonl.gz"
CURATION_KIND = "curation"  # what the COMPLETE marker of `curate` output names
SCORES_DIR = "scores"
CLEANED_FILE = ".cleaned.jsonl.gz"  # survivors of filters and dedup, before the model filters
SCORE_BATCH = 64  # documents per scoring call
SCORE_FORMAT = 1
DEDUP_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("id", pa.string()),
        ("method", pa.string()),
        ("duplicate_of_source", pa.string()),
        ("duplicate_of_id", pa.string()),
        ("similarity", pa.float64()),
    ]
)


class CurationConfig(BaseConfig):
    """What to remove: ``filters`` (by name, e.g. ``[gopher_quality, {name: c4_quality,
    min_num_sentences: 3}]``), duplicates, and optionally documents out of a perplexity band
    or below a classifier threshold. ``sample_size`` removed documents per stage (cut to
    ``sample_chars``) are kept for inspection, drawn with ``seed``."""

    filters: list[FilterField] = Field(default_factory=list)  # heuristic filters, first, in order
    dedup: DedupConfig = Field(default_factory=DedupConfig)  # then duplicate removal
    perplexity: PerplexityConfig | None = None  # then this (None: none)
    classifier: QualityClassifierConfig | None = None  # then this (None: none)
    sample_size: int = Field(default=5, ge=0)
    sample_chars: int = Field(default=500, gt=0)  # a sampled document is cut to this many chars
    seed: int = 0  # draws the sampled removed documents

    @model_validator(mode="after")
    def _stage_names_distinct(self) -> CurationConfig:
        names = [f.stage_name for f in self.filters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"filters: {', '.join(map(repr, repeated))} appears more than once; give "
                "each a distinct label"
            )
        return self

    def run(
        self,
        documents: Iterable[TextDocument],
        out_dir: str | Path,
        scores_dir: str | Path | None = None,
    ) -> CurationResult:
        """Curate ``documents`` into ``out_dir``; score files are shared in ``scores_dir``
        (default ``cache_root()/curation/scores``)."""
        return curate(self, documents, out_dir, scores_dir)


@dataclass(frozen=True)
class CurationResult:
    out_dir: Path
    documents_path: Path
    report: CurationReport

    def documents(self) -> Iterator[TextDocument]:
        """The kept documents, streamed."""
        return read_documents(self.documents_path)


def curate(
    cfg: CurationConfig,
    documents: Iterable[TextDocument],
    out_dir: str | Path,
    scores_dir: str | Path | None = None,
) -> CurationResult:
    """Run ``cfg`` over ``documents`` and write the output directory atomically (replacing an
    older one only once the new one is complete)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, kind=CURATION_KIND) as tmp:
        report = write_curation(cfg, documents, tmp, scores_dir)
    return CurationResult(out_dir, out_dir / DOCUMENTS_FILE, report)


def write_curation(
    cfg: CurationConfig,
    documents: Iterable[TextDocument],
    out_dir: Path,
    scores_dir: str | Path | None = None,
) -> CurationReport:
    """Curate ``documents`` into the empty directory ``out_dir`` (not atomically: the caller
    writes it under a temporary name, as ``curate`` and the ``curated`` source do)."""
    scores_dir = Path(scores_dir) if scores_dir is not None else default_scores_dir()
    report = _Curation(cfg, out_dir, scores_dir).run(documents)
    write_json_atomic(out_dir / STATS_FILE, report.to_dict())
    return report


class _Curation:
    def __init__(self, cfg: CurationConfig, out: Path, scores_dir: Path) -> None:
        self.cfg = cfg
        self.out = out
        self.scores_dir = scores_dir
        self.scorers: list[ScoreFilter] = [
            c.build() for c in (cfg.perplexity, cfg.classifier) if c is not None
        ]
        self.files = {"documents": DOCUMENTS_FILE}
        (out / SCORES_DIR).mkdir()

    def _recorder(self, name: str, kind: str) -> StageRecorder:
        return StageRecorder(name, kind, self.cfg.sample_size, self.cfg.sample_chars, self.cfg.seed)

    def run(self, documents: Iterable[TextDocument]) -> CurationReport:
        inputs, target = Tally(), self.out / DOCUMENTS_FILE
        if not self.scorers:
            stages, _, output = self._clean(documents, target, inputs)
        else:
            cleaned = self.out / CLEANED_FILE
            stages, digest, _ = self._clean(documents, cleaned, inputs)
            scored, output = self._select(cleaned, digest, target)
            stages += scored
            cleaned.unlink()
        return CurationReport(inputs, output, stages, self.cfg.to_dict(), self.files)

    # ------------------------------------------------------------------ filters and dedup
    def _clean(
        self, documents: Iterable[TextDocument], path: Path, inputs: Tally
    ) -> tuple[list[StageStats], str, Tally]:
        """Filters and dedup from ``documents`` to ``path``: their stages, and the digest and
        tally of the documents written."""
        filters = [f.build() for f in self.cfg.filters]
        filter_stages = [self._recorder(f.name, "filter") for f in filters]
        dedups = self._deduplicators()
        dedup_stages = [self._recorder(name, "dedup") for name, _ in dedups]
        output = Tally()
        # An intermediate file is read back once and deleted: compress it fast.
        level = FAST_LEVEL if path.name == CLEANED_FILE else FINAL_LEVEL
        with ExitStack() as stack:
            writer = stack.enter_context(DocumentWriter(path, level))
            filter_rows = self._side_file(stack, "heuristics", _filter_schema(filters))
            dedup_rows = self._side_file(stack, "dedup", DEDUP_SCHEMA if dedups else None)
            for doc in documents:
                inputs.add(doc.text)
                doc = _filtered(doc, filters, filter_stages, filter_rows)
                if doc is None or _duplicate(doc, dedups, dedup_stages, dedup_rows):
                    continue
                writer.write(doc)
                output.add(doc.text)
        stages = [r.finish() for r in filter_stages + dedup_stages]
        return stages, writer.digest(), output

    def _deduplicators(self) -> list[tuple[str, ExactDeduplicator | NearDuplicateDetector]]:
        dedups: list[tuple[str, ExactDeduplicator | NearDuplicateDetector]] = []
        if self.cfg.dedup.exact:
            dedups.append(("exact_dedup", ExactDeduplicator()))
        if self.cfg.dedup.minhash is not None:
            dedups.append(("minhash_dedup", NearDuplicateDetector(self.cfg.dedup.minhash)))
        return dedups

    def _side_file(
        self, stack: ExitStack, name: str, schema: pa.Schema | None
    ) -> ParquetRows | None:
        if schema is None:
            return None
        rel = f"{SCORES_DIR}/{name}.parquet"
        self.files[name] = rel
        return stack.enter_context(ParquetRows(self.out / rel, schema))

    # ------------------------------------------------------------------ model-based filters
    def _select(self, source: Path, digest: str, target: Path) -> tuple[list[StageStats], Tally]:
        """The model-based filters from ``source`` to ``target``: their stages, and the tally
        of the documents kept."""
        scores, details = {}, {}
        for scorer in self.scorers:
            scores[scorer.name], details[scorer.name] = self._scores(scorer, source, digest)
        selections = {s.name: s.select(scores[s.name]) for s in self.scorers}
        recorders = [self._recorder(s.name, "score") for s in self.scorers]
        output = Tally()
        with DocumentWriter(target) as writer:
            for index, doc in enumerate(read_documents(source)):
                metadata = dict(doc.metadata)
                for scorer, recorder in zip(self.scorers, recorders, strict=True):
                    recorder.seen(doc)
                    selection, score = selections[scorer.name], float(scores[scorer.name][index])
                    label = selection.labels[index]
                    if not selection.keep[index]:
                        recorder.removed(doc, f"{scorer.name}_{label}", score=score)
                        break
                    metadata[scorer.metadata_key] = score
                    if scorer.label_key is not None:
                        metadata[scorer.label_key] = label
                else:
                    writer.write(replace(doc, metadata=metadata))
                    output.add(doc.text)
        stages = [
            r.finish(**details[s.name], **selections[s.name].details)
            for s, r in zip(self.scorers, recorders, strict=True)
        ]
        return stages, output

    def _scores(
        self, scorer: ScoreFilter, source: Path, digest: str
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Scores of the documents in ``source`` (in order), from the shared score file of
        (scorer, documents), which is written first if missing; a copy goes to the output."""
        key = content_key(scorer.score_key(), digest, SCORE_FORMAT)
        shared = self.scores_dir / f"{scorer.name}-{key}.parquet"
        reused = ensure_score_file(shared, lambda: _score_rows(scorer, source))
        rel = f"{SCORES_DIR}/{scorer.name}.parquet"
        shutil.copyfile(shared, self.out / rel)
        self.files[scorer.name] = rel
        return read_scores(shared), {"score_file": str(shared), "score_file_reused": reused}


def _score_rows(scorer: ScoreFilter, source: Path) -> Iterator[tuple[str, str, float]]:
    for docs in batched(read_documents(source), SCORE_BATCH):
        for doc, score in zip(docs, scorer.score_texts([d.text for d in docs]), strict=True):
            yield doc.source, doc.id, score


def _filter_schema(filters: list[HeuristicFilter]) -> pa.Schema | None:
    if not filters:
        return None
    fields = [("source", pa.string()), ("id", pa.string())]
    for f in filters:
        fields += [(f"{f.name}.kept", pa.bool_()), (f"{f.name}.reason", pa.string())]
    return pa.schema(fields)


def _filtered(
    doc: TextDocument,
    filters: list[HeuristicFilter],
    recorders: list[StageRecorder],
    rows: ParquetRows | None,
) -> TextDocument | None:
    """``doc`` after the filters (trimmed by some), or None once one removes it."""
    row: dict[str, object] = {"source": doc.source, "id": doc.id}
    kept: TextDocument | None = doc
    for filt, recorder in zip(filters, recorders, strict=True):
        recorder.seen(kept)
        outcome = filt(kept)
        row[f"{filt.name}.kept"], row[f"{filt.name}.reason"] = outcome.kept, outcome.reason
        if not outcome.kept:
            recorder.removed(kept, outcome.reason)
            kept = None
            break
        if outcome.text != kept.text:
            recorder.trimmed(kept, outcome.text)
            kept = replace(kept, text=outcome.text)
        if outcome.metadata:
            kept = replace(kept, metadata={**kept.metadata, **outcome.metadata})
    if rows is not None:
        rows.add(row)
    return kept


def _duplicate(
    doc: TextDocument,
    dedups: list[tuple[str, ExactDeduplicator | NearDuplicateDetector]],
    recorders: list[StageRecorder],
    rows: ParquetRows | None,
) -> bool:
    """True when a deduplicator finds ``doc`` repeats a kept document (recorded as removed)."""
    for (method, dedup), recorder in zip(dedups, recorders, strict=True):
        recorder.seen(doc)
        original: Duplicate | None = dedup.check(doc)
        if original is not None:
            of = f"{original.source}/{original.id}"
            recorder.removed(doc, method, duplicate_of=of, score=original.similarity)
            rows.add(
                {
                    "source": doc.source,
                    "id": doc.id,
                    "method": method,
                    "duplicate_of_source": original.source,
                    "duplicate_of_id": original.id,
                    "similarity": original.similarity,
                }
            )
            return True
    return False
