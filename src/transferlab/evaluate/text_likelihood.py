"""``text_likelihood``: bits per byte of the user's own held-out documents, per document,
grouped by domain.

Documents come from any registered source (``text_files``, ``jsonl``, ``parquet``, a Hugging Face
dataset saved to disk with ``hf_dataset``, ...). Each document is scored whole: ``<bos>`` and its
tokens, in rolling windows of ``max_tokens`` tokens (lowered to the model's ``max_seq_len``) when
it is longer, as lm-evaluation-harness's ``loglikelihood_rolling`` does (disjoint windows, every
token predicted exactly once, each conditioned on up to ``max_tokens - 1`` tokens before it in
its window; see ``likelihood``). Bits per byte is ``-log2 p(document) / UTF-8 bytes of the
document``, which does not depend on the tokenizer, so runs pretrained on different data (and so
with different tokenizers) compare on the same footing.

A document's domain (its row's ``group``) is its source's name (``label``, else the source's
kind), or with ``group_by`` the value of that metadata field of its record (a ``language``
column, say). Per domain at most ``max_documents`` documents are kept, the first by a hash of
(``seed``, example id): the same documents for every model. A document whose text also occurs in
the run's pretraining data (the training documents of every stage of its chain, compared after
whitespace normalization: ``data.digests``) is left out, since its score would measure
memorization; how many per domain is noted (``Task.notes``: ``in_pretraining``, beside the
``documents`` scored), which the experiment's summary and report show. Without the run (a model
given alone) or for a run on ``data.path`` nothing can be checked, and the task logs so.

Rows: one per document, ``example_id`` = ``<source name>:<document id>`` (stable across runs and
models), ``group`` = the domain, ``prediction`` empty, ``target`` the document id; one declared
metric, ``bits_per_byte`` (lower is better). Read causally, or as a prefix LM (``<bos>`` as the
first window's prefix, a window's context as the later ones'); a bidirectional model gives no
likelihood.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import SOURCES, TASKS
from transferlab.config.schemas import TaskConfig
from transferlab.data.digests import TextDigests
from transferlab.data.sources import RecordSourceConfig, SourceConfig, TextDocument
from transferlab.evaluate.base import Subject, Task, TaskNote
from transferlab.evaluate.code_tasks import sample, token_budget
from transferlab.evaluate.likelihood import bits_per_byte, text_logprobs
from transferlab.evaluate.qa import check_known
from transferlab.evaluate.results import ExampleResult
from transferlab.train.trained_texts import trained_texts

log = logging.getLogger(__name__)

SCORED_NOTE = "held-out documents scored"
OVERLAP_NOTE = "held-out documents left out because the pretraining data holds their text"


@TASKS.register("text_likelihood")
class TextLikelihoodConfig(TaskConfig):
    name: Literal["text_likelihood"] = "text_likelihood"
    # the held-out documents, each source a domain (a mapping without name: jsonl)
    sources: list[SOURCES.type(SourceConfig, default="jsonl")] = Field(min_length=1)
    group_by: str | None = Field(default=None, min_length=1)  # None: by source name
    max_documents: int | None = Field(default=500, gt=0)  # per domain; None: every document
    max_tokens: int = Field(default=1024, ge=2)  # the window, lowered to the model's max_seq_len
    seed: int = 0  # draws the kept documents; the run's seed is not used
    batch_size: int = Field(default=16, gt=0)  # windows per forward
    uses_world: ClassVar[bool] = False
    readings: ClassVar[tuple[str, ...]] = ("causal", "prefix")
    reading_limit: ClassVar[str] = (
        "needs a likelihood for bits per byte, which a bidirectional model does not give"
    )
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("bits_per_byte", False, (0.0, None), "bits per UTF-8 byte of the document"),
    )

    @model_validator(mode="after")
    def _check_sources(self) -> TextLikelihoodConfig:
        names = [source.source_name for source in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"sources {names} repeat a name; give each a distinct label")
        for source in self.sources if self.group_by else []:
            if not isinstance(source, RecordSourceConfig):
                raise ValueError(
                    f"group_by reads a field of each record, and source {source.source_name!r} "
                    f"({source.name}) has no records; use jsonl, parquet or hf_dataset, or drop "
                    "group_by to group by source"
                )
            if source.metadata_fields is not None and self.group_by not in source.metadata_fields:
                raise ValueError(
                    f"group_by {self.group_by!r} is not among source {source.source_name!r}'s "
                    "metadata_fields; add it there"
                )
        return self

    def input_files(self) -> list[Path]:
        return [path for source in self.sources for path in source.input_files()]

    def build(self) -> TextLikelihoodTask:
        return TextLikelihoodTask(self)


class TextLikelihoodTask(Task[TextLikelihoodConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        """Rows for the sampled documents the run did not pretrain on."""
        cfg = self.cfg
        domains = sampled_domains(cfg)
        trained = self._trained_texts(subject)
        docs: list[tuple[str, TextDocument]] = []
        for domain, members in domains.items():
            kept = [doc for doc in members if trained is None or doc.text not in trained]
            docs += [(domain, doc) for doc in kept]
            self.notes.append(TaskNote("documents", domain, len(kept), SCORED_NOTE))
            if trained is not None:
                left_out = len(members) - len(kept)
                self.notes.append(TaskNote("in_pretraining", domain, left_out, OVERLAP_NOTE))
                if left_out:
                    log.info(
                        "%s: %d %s documents are in the pretraining data; left out",
                        cfg.task_name,
                        left_out,
                        domain,
                    )
        encoded = [subject.tokenizer.encode(doc.text) for _, doc in docs]
        for (_, doc), ids in zip(docs, encoded, strict=True):
            check_known(subject.tokenizer, ids, cfg.task_name, f"document {doc.id}")
        window = token_budget(subject.model, cfg.max_tokens)
        logprobs = text_logprobs(
            subject.reader,
            subject.model,
            encoded,
            subject.tokenizer.special,
            window,
            cfg.batch_size,
        )
        return [
            ExampleResult(
                run_id=subject.run_id,
                task=cfg.task_name,
                example_id=doc.id,
                group=domain,
                split="test",
                prediction="",
                target=doc.id,
                metrics={"bits_per_byte": bits_per_byte(logprob, doc.text)},
            ).to_dict()
            for (domain, doc), logprob in zip(docs, logprobs, strict=True)
        ]

    def _trained_texts(self, subject: Subject) -> TextDigests | None:
        """What the run pretrained on; None (logged) when that cannot be known."""
        trained = None if subject.run_dir is None else trained_texts(subject.run_dir)
        if trained is None:
            log.warning(
                "%s: cannot tell which held-out documents the model was trained on (%s); none "
                "is left out",
                self.cfg.task_name,
                "no run directory" if subject.run_dir is None else "it trained on data.path",
            )
        return trained


def sampled_domains(cfg: TextLikelihoodConfig) -> dict[str, list[TextDocument]]:
    """Per domain (in order of first appearance), its kept documents in source order, with ids
    ``<source name>:<document id>``; the same for every model."""
    domains: dict[str, list[TextDocument]] = defaultdict(list)
    for source in cfg.sources:
        for doc in source.iter_documents():
            doc = replace(doc, id=f"{source.source_name}:{doc.id}")
            domains[_domain(cfg, source, doc)].append(doc)
    if not domains:
        raise ValueError(f"{cfg.task_name}: the sources hold no document; check their paths")
    return {
        domain: sample(members, cfg.max_documents, cfg.seed, cfg.name)
        for domain, members in domains.items()
    }


def _domain(cfg: TextLikelihoodConfig, source: SourceConfig, doc: TextDocument) -> str:
    if cfg.group_by is None:
        return source.source_name
    value = doc.metadata.get("fields", {}).get(cfg.group_by)
    if value is None:
        raise ValueError(
            f"{cfg.task_name}: document {doc.id} has no {cfg.group_by!r} field to group by; give "
            "every record one, or drop group_by to group by source"
        )
    return str(value)
