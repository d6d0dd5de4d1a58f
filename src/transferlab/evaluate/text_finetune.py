"""``text_finetune``: fine-tune a copy of the model (full or LoRA) on labelled texts from the
user's files, then classify the test texts.

Two formulations (``head``). ``verbalizer`` (default): verbalized labels, scored by the language
model. The project's fine-tuning engine (``finetune``) trains on (prompt, answer) pairs with the
loss on the answer only, so the label is the answer: a training sequence is ``<bos> text <sep>
label <eos>``, with ``<sep>`` a newline (or ``<eos><bos>`` for a tokenizer without one, as
between few-shot examples) and the label encoded as it continues text (after one space). After
fine-tuning, each test text is scored against every class: the summed log-probability of
``label <eos>`` after ``<bos> text <sep>``; the softmax over the classes gives the class
probabilities, so ``p_correct`` is the tuned model's probability of the gold label among the
labels. The closing ``<eos>`` keeps a label that is a prefix of another (``pos`` /
``positive``) from winning on the shared tokens. Fine-tuning (``answer_lm``) and scoring are
causal: a prefix LM is fine-tuned as the causal LM it is with a prefix of ``<bos>`` alone (as
``qa_finetune``); a bidirectional model has no causal reading.

``classifier``: a linear head on the model's final states of ``<bos> text``, read as the model's
objective trained it (causal, prefix or bidirectional), trained with the model
(``classifier_head``); its softmax gives the class probabilities. The head reads a causal
model's state at the last token (the one that has read the whole text) and the mean over the
text of a prefix or bidirectional model's (every state has read it all). It reads a model of any
objective, and needs no label to be spelled by the tokenizer.

A text is cut on the right to ``max_tokens`` and to what the model's length leaves (beside the
separator and the longest label, for the verbalizer). In an experiment the fine-tuning
checkpoints in the evaluation's work directory, so a killed evaluation resumes exactly. Data
fields and rows: ``classification``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer
from torch import nn

from transferlab.config.registry import TASKS
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import Subject, Task
from transferlab.evaluate.classification import (
    ClassificationConfig,
    LabelledText,
    Splits,
    class_rows,
    text_ids,
)
from transferlab.evaluate.classifier_head import finetune_classifier, head_probabilities
from transferlab.evaluate.code_tasks import token_budget
from transferlab.evaluate.finetune import FinetuneResult, FinetuneTaskConfig, finetune
from transferlab.evaluate.qa import check_known, encode_answer, shot_separator
from transferlab.evaluate.readers import ALL_READINGS, ConfigReadings
from transferlab.evaluate.score import score_choices

VERBALIZER_READINGS = ("causal", "prefix")  # the label is scored causally after the text


@TASKS.register("text_finetune")
class TextFinetuneConfig(ClassificationConfig, FinetuneTaskConfig):
    name: Literal["text_finetune"] = "text_finetune"
    readings: ClassVar[Any] = ConfigReadings(
        VERBALIZER_READINGS,
        lambda cfg: ALL_READINGS if cfg.head == "classifier" else VERBALIZER_READINGS,
    )
    reading_limit: ClassVar[str] = (
        "with head: verbalizer fine-tunes and scores the label after the text causally "
        "(head: classifier reads any model)"
    )
    epochs: float = Field(default=3.0, gt=0)  # passes over the training examples
    eval_batch_size: int = Field(default=64, gt=0)  # sequences per forward when evaluating
    # verbalizer: the label is scored as text after the text (causal, prefix models);
    # classifier: a linear head on the text's final states (a model of any objective)
    head: Literal["verbalizer", "classifier"] = "verbalizer"

    @model_serializer(mode="wrap")
    def _without_default_head(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out at the verbalizer, so evaluations keyed before the option existed keep
        # their keys.
        data = handler(self)
        if self.head == "verbalizer":
            data.pop("head", None)
        return data

    def build(self) -> TextFinetuneTask:
        return TextFinetuneTask(self)


@dataclass(frozen=True)
class Verbalizer:
    """How examples become token ids: the prompt of a text and the answer of each class."""

    tokenizer: TextTokenizer
    separator: list[int]
    labels: dict[str, list[int]]  # class -> its tokens and <eos>, in class order
    budget: int  # positions of <bos> and the text

    def prompt(self, text: str) -> list[int]:
        return [*text_ids(self.tokenizer, text, self.budget), *self.separator]

    def pairs(self, examples: Sequence[LabelledText]) -> list[tuple[list[int], list[int]]]:
        return [(self.prompt(e.text), self.labels[e.label]) for e in examples]


def verbalizer(
    tokenizer: TextTokenizer, model: nn.Module, classes: Sequence[str], cfg: TextFinetuneConfig
) -> Verbalizer:
    """The verbalizer of ``classes``; a one-line error for a label the tokenizer cannot spell
    (an ``<unk>`` would merge it with every other unknown word) or two labels spelled alike."""
    labels = {label: encode_answer(tokenizer, label, eos=True) for label in classes}
    for label, ids in labels.items():
        check_known(tokenizer, ids, cfg.task_name, f"label {label!r}")
    spelled: dict[tuple[int, ...], str] = {}
    for label, ids in labels.items():
        other = spelled.setdefault(tuple(ids), label)
        if other != label:
            raise ValueError(
                f"{cfg.task_name}: labels {other!r} and {label!r} encode to the same tokens; "
                "rename one in the data"
            )
    separator = shot_separator(tokenizer)
    extra = len(separator) + max(len(ids) for ids in labels.values())
    budget = token_budget(model, cfg.max_tokens + extra) - extra
    if budget < 2:
        raise ValueError(
            f"{cfg.task_name}: the model's length leaves {max(budget - 1, 0)} token(s) of text "
            "beside the separator and the longest label; use shorter labels"
        )
    return Verbalizer(tokenizer, separator, labels, budget)


class TextFinetuneTask(Task[TextFinetuneConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg = self.cfg
        splits = cfg.splits()
        if cfg.head == "classifier":
            return self.classify(subject, splits)
        words = verbalizer(subject.tokenizer, subject.model, splits.classes, cfg)
        tuned = self.tune(subject, words.pairs(splits.train)).model
        if cfg.method == "lora":  # fold the adapters in: a plain model scores faster
            tuned = tuned.merge_and_unload()
        probs = self.probabilities(tuned, words, splits.test, subject.tokenizer.special.pad)
        return class_rows(probs, splits.test, splits.classes, subject.run_id, cfg.task_name)

    def classify(self, subject: Subject, splits: Splits) -> list[dict[str, Any]]:
        """Rows of a classification head fine-tuned with the model on the training texts."""
        cfg = self.cfg
        budget = token_budget(subject.model, cfg.max_tokens)
        train = [text_ids(subject.tokenizer, e.text, budget) for e in splits.train]
        labels = [[splits.classes.index(e.label)] for e in splits.train]
        pad = subject.tokenizer.special.pad
        run_dir = None if self.work_dir is None else self.work_dir / "finetune"
        tuned = finetune_classifier(
            subject.model,
            list(zip(train, labels, strict=True)),
            [len(splits.classes)],
            subject.reader,
            # A causal model's last state is the one that has read the whole text; every state
            # of a prefix or bidirectional model has.
            "last" if subject.reader.attention == "causal" else "mean",
            cfg.settings(len(train)),
            subject.seed,
            pad,
            run_dir,
        ).model
        test = [text_ids(subject.tokenizer, e.text, budget) for e in splits.test]
        (probs,) = head_probabilities(tuned, test, pad, cfg.eval_batch_size)
        return class_rows(probs, splits.test, splits.classes, subject.run_id, cfg.task_name)

    def tune(self, subject: Subject, pairs: list[tuple[list[int], list[int]]]) -> FinetuneResult:
        """A fine-tuned copy of the subject's model (its checkpoints in the work directory)."""
        run_dir = None if self.work_dir is None else self.work_dir / "finetune"
        settings = self.cfg.settings(len(pairs))
        pad = subject.tokenizer.special.pad
        return finetune(subject.model, pairs, settings, subject.seed, pad, run_dir)

    def probabilities(
        self, model: nn.Module, words: Verbalizer, examples: Sequence[LabelledText], pad: int
    ) -> torch.Tensor:
        """[len(examples), K]: the softmax over the classes of each label's log-likelihood."""
        choices = list(words.labels.values())
        requests = [(words.prompt(e.text), choices) for e in examples]
        scores = score_choices(model, requests, self.cfg.eval_batch_size, pad)
        return torch.tensor(scores, dtype=torch.float64).softmax(-1)
