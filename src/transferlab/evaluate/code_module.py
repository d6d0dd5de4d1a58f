"""``code_module``: which standard-library package does a held-out function come from?

A linear probe (``probe``: multinomial logistic regression, deterministic) on frozen hidden
states predicts a function's top-level module (``email`` for ``email/_header_value_parser.py``).
It trains on the functions of pretraining-side files and is evaluated on the functions of
held-out files (see ``code_tasks``): no file contributes to both, so the probe cannot lean on
what one file's functions share (its helpers, its variable names), only on what a package's
files share.

Classes: the ``top_k_modules`` most frequent top-level modules among the held-out functions,
counting only modules that also have pretraining-side functions (ties broken by name); both
sides keep only functions of those modules. A single-file module has all its functions on one
side, so packages of several files are what this task can use (``code_tasks.DEFAULT_MODULES``).

Features: ``<bos>`` + the function's source, cut on the right to the token budget
(``max_tokens``, lowered to the model's ``max_seq_len``); the residual stream at ``layer`` (0 =
embeddings, -1 = after the last block), at the last token (``pooling: last``) or averaged over
all tokens, ``<bos>`` included (``pooling: mean``).

Rows, one per evaluated held-out function: ``prediction`` the most probable module, ``target``
the real one (also the group); declared metrics ``correct``, ``p_correct`` its probability,
``margin`` = ``p_correct`` minus the largest probability of another module.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import TASKS
from transferlab.data.sources import TextDocument
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import Subject, Task
from transferlab.evaluate.code_tasks import (
    CodeSplit,
    CodeTaskConfig,
    describe_corpus,
    sample,
    split_functions,
    token_budget,
    top_module,
)
from transferlab.evaluate.metrics import ACCURACY, MARGIN, P_CORRECT
from transferlab.evaluate.probe import LinearProbe, fit_linear_probe
from transferlab.evaluate.readers import ALL_READINGS, Reader
from transferlab.evaluate.results import ExampleResult


@TASKS.register("code_module")
class CodeModuleConfig(CodeTaskConfig):
    name: Literal["code_module"] = "code_module"
    readings: ClassVar[tuple[str, ...]] = ALL_READINGS
    top_k_modules: int = Field(default=8, ge=2)  # classes: the most frequent top-level modules
    pooling: Literal["last", "mean"] = "mean"  # the last token's state, or the mean over all
    layer: int = -1  # index into the residual stream; -1: after the last block
    l2: float = Field(default=1e-3, ge=0)  # the probe's L2 penalty (standardized features)
    max_iter: int = Field(default=200, gt=0)  # L-BFGS iterations of the probe's fit
    max_train_examples: int | None = Field(default=2000, gt=0)  # None: all
    max_examples: int | None = Field(default=500, gt=0)  # held-out functions evaluated; None: all
    metrics: ClassVar[tuple[MetricSpec, ...]] = (ACCURACY, P_CORRECT, MARGIN)

    def build(self) -> CodeModuleTask:
        return CodeModuleTask(self)


def probe_modules(split: CodeSplit, top_k: int) -> list[str]:
    """The classes: the ``top_k`` most frequent held-out modules that both sides have."""
    trained = {top_module(doc) for doc in split.pretraining}
    counts = Counter(top_module(doc) for doc in split.heldout if top_module(doc) in trained)
    ranked = sorted(counts, key=lambda module: (-counts[module], module))
    return sorted(ranked[:top_k])


def probe_examples(
    cfg: CodeModuleConfig,
) -> tuple[list[str], list[TextDocument], list[TextDocument]]:
    """(modules, training functions, evaluated functions) of ``cfg``, in corpus order."""
    split = split_functions(cfg)
    modules = probe_modules(split, cfg.top_k_modules)
    if len(modules) < 2:
        raise ValueError(
            f"code_module: {len(modules)} module(s) have functions on both sides of the split "
            f"({describe_corpus(cfg)}); a probe needs two, so add packages of several files"
        )
    train = [doc for doc in split.pretraining if top_module(doc) in modules]
    test = [doc for doc in split.heldout if top_module(doc) in modules]
    return (
        modules,
        sample(train, cfg.max_train_examples, cfg.seed, "train"),
        sample(test, cfg.max_examples, cfg.seed, "examples"),
    )


class CodeModuleTask(Task[CodeModuleConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        """Rows for ``cfg``'s held-out functions; the subject's world and seed are unused (the
        fit has no randomness, the examples are fixed by ``cfg``)."""
        cfg = self.cfg
        self._check_layer(subject.model)
        _, train, test = probe_examples(cfg)
        budget = token_budget(subject.model, cfg.max_tokens)
        features = self._features(
            subject.model, subject.tokenizer, [*train, *test], budget, subject.reader
        )
        probe = fit_linear_probe(
            features[: len(train)], [top_module(doc) for doc in train], cfg.l2, cfg.max_iter
        )
        probs = probe.probabilities(features[len(train) :])
        return [
            _row(doc, probe, p, subject.run_id, cfg.task_name).to_dict()
            for doc, p in zip(test, probs, strict=True)
        ]

    def _check_layer(self, model: nn.Module) -> None:
        n_layers = len(model.blocks)
        if not -(n_layers + 1) <= self.cfg.layer <= n_layers:
            raise ValueError(
                f"layer={self.cfg.layer} is out of range for a model of {n_layers} layers; "
                f"use -{n_layers + 1}..{n_layers}"
            )

    def _features(
        self,
        model: nn.Module,
        tokenizer: TextTokenizer,
        docs: list[TextDocument],
        budget: int,
        reader: Reader,
    ) -> torch.Tensor:
        """[len(docs), d]: each function's pooled hidden state at ``cfg.layer``."""
        bos = tokenizer.special.bos
        texts = tokenizer.encode_batch([doc.text for doc in docs])
        sequences = [[bos, *ids[: budget - 1]] for ids in texts]
        layers = [self.cfg.layer]
        return reader.features(model, sequences, layers, self.cfg.pooling, self.cfg.batch_size)[0]


def _row(
    doc: TextDocument, probe: LinearProbe, probs: torch.Tensor, run_id: str, task: str
) -> ExampleResult:
    target = top_module(doc)
    best = int(probs.argmax())
    gold = probe.classes.index(target) if target in probe.classes else None
    p_gold = float(probs[gold]) if gold is not None else 0.0
    others = [float(p) for k, p in enumerate(probs) if k != gold]
    return ExampleResult(
        run_id=run_id,
        task=task,
        example_id=doc.id,
        group=target,
        split="test",
        prediction=probe.classes[best],
        target=target,
        metrics={
            "correct": float(best == gold),
            "p_correct": p_gold,
            "margin": p_gold - max(others, default=0.0),
        },
    )
