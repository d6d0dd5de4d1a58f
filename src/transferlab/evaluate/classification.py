"""Labelled texts from the user's files, shared by the classification tasks (``text_probe``,
``text_finetune``): reading the examples, splitting them, and the rows of a prediction.

Examples are records of a JSON Lines or parquet file (read by the ``jsonl`` / ``parquet``
sources), with the text in ``text_field``, the label in ``label_field`` and, optionally, an id in
``id_field`` (default: the record's place, ``<file>:<line>`` or ``<file>:<row>``). Either
``train_path`` and ``test_path`` name the two splits, or ``path`` names one file split by
``test_fraction``: an example is a test example when a hash of its id falls below the fraction,
so the split depends on the ids alone (not on the model, the tokenizer, the order or the other
records), and the same examples are held out for every variant and seed.

The classes are the labels of the training examples, sorted; a test example whose label never
occurs in training could not be predicted, and is refused with the labels that are known.

Rows: one per test example; ``prediction`` the most probable class, ``target`` and ``group`` the
gold label; metrics ``correct``, ``p_correct`` (the probability of the gold class) and
``margin`` (``p_correct`` minus the largest probability of another class).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator

from transferlab.config.metrics import MetricSpec
from transferlab.config.schemas import TaskConfig
from transferlab.data.sources import JsonlConfig, ParquetConfig
from transferlab.data.sources.base import TextDocument
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.code_tasks import sample
from transferlab.evaluate.metrics import ACCURACY, MARGIN, P_CORRECT, max_other
from transferlab.evaluate.results import ExampleResult


@dataclass(frozen=True)
class LabelledText:
    id: str
    text: str
    label: str


@dataclass(frozen=True)
class Splits:
    train: list[LabelledText]
    test: list[LabelledText]
    classes: list[str]  # the training labels, sorted: class k is column k of a prediction


class ClassificationConfig(TaskConfig):
    """The data fields of a classification task (see the module docstring)."""

    uses_world: ClassVar[bool] = False
    path: str | None = None  # one file, split by test_fraction
    test_fraction: float = Field(default=0.2, gt=0, lt=1)  # share of path's examples tested
    train_path: str | None = None  # or the two splits in two files
    test_path: str | None = None  # the test examples, with train_path
    format: Literal["auto", "jsonl", "parquet"] = "auto"  # auto: .parquet is parquet, else jsonl
    text_field: str = Field(default="text", min_length=1)  # the record's field holding the text
    label_field: str = Field(default="label", min_length=1)  # the field holding its label
    # a field of unique example ids; None: the record's place (<file>:<line> or <file>:<row>)
    id_field: str | None = Field(default=None, min_length=1)
    max_train: int | None = Field(default=None, gt=0)  # None: every training example
    max_test: int | None = Field(default=None, gt=0)  # None: every test example
    seed: int = 0  # which examples max_train / max_test keep
    max_tokens: int = Field(default=256, gt=0)  # a text's tokens beyond it are cut off
    metrics: ClassVar[tuple[MetricSpec, ...]] = (ACCURACY, P_CORRECT, MARGIN)

    @model_validator(mode="after")
    def _one_way_to_split(self) -> ClassificationConfig:
        pair = (self.train_path, self.test_path)
        if self.path is None and None in pair:
            raise ValueError(
                f"{self.name}: give path (one file, split by test_fraction) or both "
                "train_path and test_path"
            )
        if self.path is not None and pair != (None, None):
            raise ValueError(f"{self.name}: give either path or train_path and test_path, not both")
        return self

    def splits(self) -> Splits:
        """The training and test examples (sampled down to ``max_train`` / ``max_test``)."""
        if self.path is not None:
            docs = self._read(self.path)
            train = [doc for doc in docs if not is_test(doc.id, self.test_fraction)]
            test = [doc for doc in docs if is_test(doc.id, self.test_fraction)]
        else:
            train, test = self._read(self.train_path), self._read(self.test_path)
        train = [self._example(d) for d in sample(train, self.max_train, self.seed, "train")]
        test = [self._example(d) for d in sample(test, self.max_test, self.seed, "test")]
        return Splits(train, test, self._classes(train, test))

    def input_files(self) -> list[Path]:
        paths = [p for p in (self.path, self.train_path, self.test_path) if p is not None]
        return [file for p in paths for file in self._source(p).input_files()]

    def _source(self, path: str) -> JsonlConfig | ParquetConfig:
        kind = self.format
        if kind == "auto":
            kind = "parquet" if path.endswith(".parquet") else "jsonl"
        source_type = ParquetConfig if kind == "parquet" else JsonlConfig
        return source_type(
            path=path,
            text_field=self.text_field,
            id_field=self.id_field,
            metadata_fields=[self.label_field],
        )

    def _read(self, path: str) -> list[TextDocument]:
        docs = list(self._source(path).iter_documents())
        if not docs:
            raise ValueError(
                f"{self.name}: {path} holds no record with a text in text_field="
                f"{self.text_field!r} (and an id in id_field={self.id_field!r}); set them to "
                "fields of its records"
            )
        ids = [doc.id for doc in docs]
        if len(set(ids)) < len(ids):
            repeated = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(
                f"{self.name}: id {repeated!r} occurs twice in {path}; ids pair the rows "
                f"across runs, so id_field={self.id_field!r} must name a unique field"
            )
        return docs

    def _example(self, doc: TextDocument) -> LabelledText:
        label = doc.metadata["fields"].get(self.label_field)
        if label is None or isinstance(label, (dict, list)):
            raise ValueError(
                f"{self.name}: record {doc.id} has no label in label_field="
                f"{self.label_field!r}; set label_field to the field holding each label"
            )
        return LabelledText(doc.id, doc.text, str(label))

    def _classes(self, train: list[LabelledText], test: list[LabelledText]) -> list[str]:
        classes = sorted({e.label for e in train})
        if len(classes) < 2:
            raise ValueError(
                f"{self.name}: the training examples hold {len(classes)} label(s) {classes}; "
                "a classification needs at least two"
            )
        unknown = next((e for e in test if e.label not in classes), None)
        if unknown is not None:
            raise ValueError(
                f"{self.name}: test example {unknown.id} has label {unknown.label!r}, which no "
                f"training example has (labels: {classes}); add training examples of it or "
                "drop it from the test set"
            )
        if not test:
            raise ValueError(f"{self.name}: no test example; raise test_fraction or max_test")
        return classes


def is_test(example_id: str, test_fraction: float) -> bool:
    """Whether the example with this id is held out: its hash, as a number in [0, 1), is below
    ``test_fraction``."""
    digest = hashlib.sha256(f"classification-split:{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def text_ids(tokenizer: TextTokenizer, text: str, budget: int) -> list[int]:
    """``<bos>`` and the text's tokens, cut on the right to ``budget`` positions."""
    return [tokenizer.special.bos, *tokenizer.encode(text)][:budget]


def class_rows(
    probs: torch.Tensor,
    examples: Sequence[LabelledText],
    classes: Sequence[str],
    run_id: str,
    task: str,
) -> list[dict]:
    """The rows of the class probabilities ``probs`` [N, K] of ``examples``."""
    rows = []
    for p, example in zip(probs, examples, strict=True):
        gold = classes.index(example.label)
        predicted = int(p.argmax())
        p_gold = float(p[gold])
        rows.append(
            ExampleResult(
                run_id=run_id,
                task=task,
                example_id=example.id,
                group=example.label,
                split="test",
                prediction=classes[predicted],
                target=example.label,
                metrics={
                    "correct": float(predicted == gold),
                    "p_correct": p_gold,
                    "margin": p_gold - max_other(p, gold),
                },
            ).to_dict()
        )
    return rows
