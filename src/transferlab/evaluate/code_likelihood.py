"""``code_likelihood``: how probable does a model find held-out standard-library functions?

The zero-shot measure of how well pretraining fits a domain, as lm-evaluation-harness's
perplexity tasks and Paloma report it: each example is a top-level function from a held-out file
(see ``code_tasks``), scored as ``<bos>`` + its source, cut on the right to the token budget
(``max_tokens``, lowered to the model's ``max_seq_len``). Per example the task computes bits
per byte, ``-log2 p(tokens) / UTF-8 bytes of the scored text``, which, unlike a per-token loss,
does not depend on the tokenizer: runs pretrained on different data (hence with different
tokenizers) are compared on the same footing.

Rows: one declared metric, ``bits_per_byte`` (lower is better, >= 0). There is no choice to
get right, so no accuracy; nor a probability ``2 ** -bits_per_byte``, a monotone transform of
the same number on a scale that compresses exactly the differences between good models.
``prediction`` is empty and ``target`` the function's name; the group is its top-level module.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import TASKS
from transferlab.evaluate.base import Subject, Task
from transferlab.evaluate.code_tasks import (
    CodeTaskConfig,
    describe_corpus,
    sample,
    split_functions,
    token_budget,
    top_module,
)
from transferlab.evaluate.likelihood import bits_per_byte
from transferlab.evaluate.qa import check_known
from transferlab.evaluate.results import ExampleResult


@TASKS.register("code_likelihood")
class CodeLikelihoodConfig(CodeTaskConfig):
    name: Literal["code_likelihood"] = "code_likelihood"
    # Scored after <bos> alone, the prefix reading is the causal likelihood; pseudo-log-
    # likelihood is no likelihood, so it gives no bits per byte.
    readings: ClassVar[tuple[str, ...]] = ("causal", "prefix")
    reading_limit: ClassVar[str] = (
        "needs a likelihood for bits per byte, which a bidirectional model does not give"
    )
    max_examples: int | None = Field(default=500, gt=0)  # None: every held-out function
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("bits_per_byte", False, (0.0, None), "bits per UTF-8 byte of the scored source"),
    )

    def build(self) -> CodeLikelihoodTask:
        return CodeLikelihoodTask(self)


class CodeLikelihoodTask(Task[CodeLikelihoodConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        """Rows for ``cfg``'s held-out functions; the subject's world and seed are unused."""
        cfg = self.cfg
        docs = sample(list(split_functions(cfg).heldout), cfg.max_examples, cfg.seed, "examples")
        if not docs:
            raise ValueError(
                f"code_likelihood: no held-out function ({describe_corpus(cfg)}); add modules "
                "or raise heldout_fraction"
            )
        room = token_budget(subject.model, cfg.max_tokens) - 1  # one position for <bos>
        scored = [subject.tokenizer.encode(doc.text)[:room] for doc in docs]
        for doc, ids in zip(docs, scored, strict=True):
            check_known(subject.tokenizer, ids, cfg.task_name, f"function {doc.id}")
        requests = [([subject.tokenizer.special.bos], [ids]) for ids in scored]
        logprobs = subject.reader.score_choices(
            subject.model, requests, subject.tokenizer.special, cfg.batch_size
        )
        rows = []
        for doc, ids, (logprob,) in zip(docs, scored, logprobs, strict=True):
            bits = bits_per_byte(logprob, subject.tokenizer.decode(ids))
            rows.append(
                ExampleResult(
                    run_id=subject.run_id,
                    task=cfg.task_name,
                    example_id=doc.id,
                    group=top_module(doc),
                    split="test",
                    prediction="",
                    target=doc.metadata["name"],
                    metrics={"bits_per_byte": bits},
                ).to_dict()
            )
        return rows
