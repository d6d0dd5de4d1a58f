"""``qa_classify``: fine-tune the model with a classification head per attribute, the
fine-tuned counterpart of ``qa_probe``, for a model of any objective.

The model reads what ``qa_probe`` reads (``position``: ``"<bos>"`` and the person's full name,
or the question about the attribute) under the attention its objective trained with, so a
causal, prefix or bidirectional model is fine-tuned alike, with no use of its output head. Its
final state at the last token feeds a linear head per attribute (a birth date has three, month,
day and year, predicted as independent parts as ``qa_probe`` does); the model and the heads
train together (``classifier_head``: full or LoRA, the engine's optimizers, checkpoints and
exact resume) on the QA-train people, then predict for the people of ``eval_splits``. With
``name_last`` an example is a person, labelling every head (one name, six answers); with
``question_last`` it is a question, labelling its attribute's heads. A head's classes are the
values of the QA-train people; a gold value never seen in training cannot be predicted (its
probability is 0).

Rows: one per (person, attribute), as ``qa_probe``'s (``qa_probe.value_row``): ``prediction``
the most probable value; ``correct``, ``p_correct`` (the probability of the gold value, the
product of its parts'), ``margin`` and ``p_part`` (the mean of the gold parts' probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import nn

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import TASKS
from transferlab.evaluate.base import QaTaskConfig, Subject, Task, require_bios
from transferlab.evaluate.classifier_head import (
    LabelledSequence,
    finetune_classifier,
    head_probabilities,
)
from transferlab.evaluate.finetune import FinetuneTaskConfig
from transferlab.evaluate.qa import encode_prompt, train_and_eval_items
from transferlab.evaluate.qa_probe import (
    VALUE_METRICS,
    Position,
    prompt_texts,
    value_parts,
    value_row,
)
from transferlab.evaluate.readers import ALL_READINGS
from transferlab.objectives import IGNORE_INDEX
from transferlab.worlds.bios import QAItem


@TASKS.register("qa_classify")
class QaClassifyConfig(QaTaskConfig, FinetuneTaskConfig):
    name: Literal["qa_classify"] = "qa_classify"
    readings: ClassVar[tuple[str, ...]] = ALL_READINGS
    # what the model reads: the person's name (one example per person), or the question
    position: Position = "name_last"
    eval_batch_size: int = Field(default=64, gt=0)  # sequences per forward when evaluating
    metrics: ClassVar[tuple[MetricSpec, ...]] = VALUE_METRICS

    def build(self) -> QaClassifyTask:
        return QaClassifyTask(self)


@dataclass(frozen=True)
class ValueHead:
    """The head predicting part ``part`` of ``attribute``'s value (``qa_probe.value_parts``)."""

    attribute: str
    part: int
    classes: list[str]  # the part's values among the QA-train people, sorted


def value_heads(train: Sequence[QAItem], attributes: Sequence[str]) -> list[ValueHead]:
    """One head per part of each attribute's value, its classes those of ``train``."""
    heads = []
    for attribute in attributes:
        values = [value_parts(attribute, i.answer) for i in train if i.attribute == attribute]
        if not values:
            raise ValueError(
                f"qa_classify: no QA-train person has a question about {attribute!r}; use a "
                "bigger world (world.num_people) or a larger QA-train share"
            )
        for part in range(len(values[0])):
            heads.append(ValueHead(attribute, part, sorted({v[part] for v in values})))
    return heads


def labelled_examples(
    train: Sequence[QAItem],
    texts: Sequence[str],
    heads: Sequence[ValueHead],
    ids: dict[str, list[int]],
) -> list[LabelledSequence]:
    """One example per (person, text read): the items read as the same text of one person (all
    of a person's with ``name_last``) label their attributes' heads, the others are ignored."""
    labels: dict[tuple[int, str], list[int]] = {}
    for item, text in zip(train, texts, strict=True):
        row = labels.setdefault((item.person_id, text), [IGNORE_INDEX] * len(heads))
        parts = value_parts(item.attribute, item.answer)
        for h, head in enumerate(heads):
            if head.attribute == item.attribute:
                row[h] = head.classes.index(parts[head.part])
    return [(ids[text], row) for (_, text), row in labels.items()]


class QaClassifyTask(Task[QaClassifyConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg = self.cfg
        world = require_bios(subject.world, cfg.task_name)
        items = train_and_eval_items(world, cfg)
        texts = prompt_texts(world, items, cfg.position)
        ids = {text: encode_prompt(subject.tokenizer, text) for text in set(texts)}
        train = [n for n, item in enumerate(items) if item.split == "train"]
        train_items = [items[n] for n in train]
        heads = value_heads(train_items, cfg.attribute_names)
        examples = labelled_examples(train_items, [texts[n] for n in train], heads, ids)
        classifier = self.tune(subject, examples, heads)
        evaluated = [n for n, item in enumerate(items) if item.split in cfg.eval_splits]
        unique = sorted({texts[n] for n in evaluated})
        pad = subject.tokenizer.special.pad
        probs = head_probabilities(classifier, [ids[t] for t in unique], pad, cfg.eval_batch_size)
        slot = {text: k for k, text in enumerate(unique)}
        rows = []
        for n in evaluated:
            item = items[n]
            mine = [h for h, head in enumerate(heads) if head.attribute == item.attribute]
            classes = [heads[h].classes for h in mine]
            item_probs = [probs[h][slot[texts[n]]] for h in mine]
            facets = world.facets(item.person_id)
            rows.append(value_row(item, classes, item_probs, subject.run_id, cfg.task_name, facets))
        return rows

    def tune(
        self, subject: Subject, examples: list[LabelledSequence], heads: list[ValueHead]
    ) -> nn.Module:
        """The subject's model fine-tuned with ``heads`` (checkpoints in the work directory)."""
        run_dir = None if self.work_dir is None else self.work_dir / "finetune"
        return finetune_classifier(
            subject.model,
            examples,
            [len(head.classes) for head in heads],
            subject.reader,
            "last",
            self.cfg.settings(len(examples)),
            subject.seed,
            subject.tokenizer.special.pad,
            run_dir,
        ).model
