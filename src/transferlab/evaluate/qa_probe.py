"""``qa_probe``: linear probes on frozen hidden states, predicting each attribute of a person.

Position ``name_last`` (default): the hidden state at the last token of ``"<bos>First Middle
Last"``. Every biography opens with the person's full name, so in a causal model this is also
the state at the end of the name's first mention in the corpus, and no other text is there that
could leak an attribute.
Position ``question_last``: the state at the last token of the QA question about the attribute
(``"<bos>question"``), where the model would have to start answering.

A probe per attribute (multinomial logistic regression, see ``probe``) trains on the QA-train
people and predicts for the people of ``eval_splits``. Birth dates, which almost never repeat,
are predicted as three independent parts (month, day, year) whose joint probability is the
product; other attributes are one classification over the values seen in training. A gold value
never seen in training cannot be predicted (its probability is 0).

Rows: ``prediction`` the most probable value; declared metrics ``correct`` whether it is the
gold, ``p_correct`` the probability of the gold, ``margin`` = ``p_correct`` minus the largest
probability of another value, ``p_part`` the mean of the gold parts' probabilities (a date's
month, day and year; ``p_correct`` for a one-part value), which a part learned moves even when
the joint probability of a date (three factors) stays near 0. ``layer: all`` probes every layer, each
reported as task ``"<task>@L<i>"`` (0 = embeddings). The fit has no randomness, so ``seed`` is
unused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import TASKS
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import QaTaskConfig, Subject, Task, require_bios
from transferlab.evaluate.features import Layer, probe_layers
from transferlab.evaluate.metrics import ACCURACY, MARGIN, P_CORRECT
from transferlab.evaluate.probe import fit_linear_probe
from transferlab.evaluate.qa import encode_prompt, train_and_eval_items
from transferlab.evaluate.readers import ALL_READINGS, Reader
from transferlab.evaluate.results import ExampleResult
from transferlab.worlds.bios import BiosWorld, QAItem

Position = Literal["name_last", "question_last"]  # what the model reads: a name, or a question
P_PART = MetricSpec(
    "p_part",
    True,
    (0.0, 1.0),
    "mean over the value's parts (a date's month, day, year) of the "
    "probability the model gives the gold part",
)
VALUE_METRICS = (ACCURACY, P_CORRECT, MARGIN, P_PART)  # the rows of ``value_row``


@TASKS.register("qa_probe")
class QaProbeConfig(QaTaskConfig):
    name: Literal["qa_probe"] = "qa_probe"
    readings: ClassVar[tuple[str, ...]] = ALL_READINGS
    # the state read: at the end of the person's name, or of the question
    position: Position = "name_last"
    layer: Layer = -1  # index into the residual stream; -1: after the last block
    l2: float = Field(default=1e-3, ge=0)  # the probe's L2 penalty (standardized features)
    max_iter: int = Field(default=200, gt=0)  # L-BFGS iterations of the probe's fit
    batch_size: int = Field(default=64, gt=0)  # sequences per forward to read features
    metrics: ClassVar[tuple[MetricSpec, ...]] = VALUE_METRICS

    def build(self) -> QaProbeTask:
        return QaProbeTask(self)


def prompt_texts(world: BiosWorld, items: Sequence[QAItem], position: Position) -> list[str]:
    """What the model reads for each item (after ``<bos>``): its person's full name
    (``name_last``) or its question (``question_last``)."""
    if position == "name_last":
        names = {person.person_id: person.full_name for person in world.people}
        return [names[item.person_id] for item in items]
    return [item.question for item in items]


def value_parts(attribute: str, value: str) -> tuple[str, ...]:
    """The independently probed parts of a value: (month, day, year) of a date, else (value,)."""
    if attribute != "birth_date":
        return (value,)
    month, rest = value.split(" ", 1)
    day, year = rest.split(", ")
    return month, day, year


def join_parts(attribute: str, parts: tuple[str, ...]) -> str:
    """Inverse of ``value_parts``."""
    return f"{parts[0]} {parts[1]}, {parts[2]}" if attribute == "birth_date" else parts[0]


class QaProbeTask(Task[QaProbeConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg = self.cfg
        world = require_bios(subject.world, cfg.task_name)
        items = train_and_eval_items(world, cfg)
        layers = probe_layers(subject.model, cfg.layer)
        features = self._features(
            subject.model, subject.tokenizer, world, items, layers, subject.reader
        )
        rows = []
        for layer_slot, layer in enumerate(layers):
            task = cfg.task_name if cfg.layer != "all" else f"{cfg.task_name}@L{layer}"
            by_item: dict[int, dict[str, Any]] = {}
            for attribute in cfg.attribute_names:
                by_item |= self._attribute_rows(
                    features[layer_slot], world, items, attribute, subject.run_id, task
                )
            rows += [by_item[i] for i in sorted(by_item)]  # in the world's item order
        return rows

    def _features(
        self,
        model: nn.Module,
        tokenizer: TextTokenizer,
        world: BiosWorld,
        items: list[QAItem],
        layers: list[int],
        reader: Reader,
    ) -> torch.Tensor:
        """[len(layers), len(items), d]; each distinct text goes through the model once."""
        texts = prompt_texts(world, items, self.cfg.position)
        unique = sorted(set(texts))
        sequences = [encode_prompt(tokenizer, text) for text in unique]
        hidden = reader.features(model, sequences, layers, "last", self.cfg.batch_size)
        slot = {text: i for i, text in enumerate(unique)}
        return hidden[:, [slot[text] for text in texts]]

    def _attribute_rows(
        self,
        features: torch.Tensor,
        world: BiosWorld,
        items: list[QAItem],
        attribute: str,
        run_id: str,
        task: str,
    ) -> dict[int, dict[str, Any]]:
        """Fit the attribute's probes on the QA-train rows of ``features``; the result rows of
        the evaluated items, by index in ``items``."""
        mine = [i for i, item in enumerate(items) if item.attribute == attribute]
        train = [i for i in mine if items[i].split == "train"]
        evaluated = [i for i in mine if items[i].split in self.cfg.eval_splits]
        golds = {i: value_parts(attribute, items[i].answer) for i in mine}
        classes, probs = [], []
        for part in range(len(golds[train[0]])):
            labels = [golds[i][part] for i in train]
            probe = fit_linear_probe(features[train], labels, self.cfg.l2, self.cfg.max_iter)
            classes.append(probe.classes)
            probs.append(probe.probabilities(features[evaluated]))
        return {
            i: value_row(
                items[i],
                classes,
                [p[n] for p in probs],
                run_id,
                task,
                world.facets(items[i].person_id),
            )
            for n, i in enumerate(evaluated)
        }


def value_row(
    item: QAItem,
    classes: Sequence[Sequence[str]],
    probs: Sequence[torch.Tensor],
    run_id: str,
    task: str,
    facets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The row of ``item`` whose value's parts (``value_parts``) have the probabilities
    ``probs`` over ``classes`` (one per part): the most probable value, whether it is the
    gold, the gold's probability and the margin (see ``joint_prediction``), the mean of the gold
    parts' probabilities, with the person's ``facets`` (``BiosWorld.facets``)."""
    gold = value_parts(item.attribute, item.answer)
    parts, p_gold, margin = joint_prediction(classes, probs, gold)
    p_parts = gold_part_probabilities(classes, probs, gold)
    prediction = join_parts(item.attribute, parts)
    return ExampleResult(
        run_id=run_id,
        task=task,
        example_id=item.id,
        group=item.attribute,
        split=item.split,
        prediction=prediction,
        target=item.answer,
        metrics={
            "correct": float(prediction == item.answer),
            "p_correct": p_gold,
            "margin": margin,
            "p_part": sum(p_parts) / len(p_parts),
        },
        facets=facets or {},
    ).to_dict()


def joint_prediction(
    classes: Sequence[Sequence[str]], probs: Sequence[torch.Tensor], gold: tuple[str, ...]
) -> tuple[tuple[str, ...], float, float]:
    """(predicted parts, p(gold), p(gold) - max p(other value)) for independent parts, part
    ``c`` with the probabilities ``probs[c]`` over ``classes[c]``.

    The joint probability of a value is the product of its parts' probabilities. The best joint
    is each part's best; when that is the gold, the best other value changes the one part whose
    runner-up costs least (changing more parts only multiplies in more factors below 1).
    """
    best = [int(p.argmax()) for p in probs]
    predicted = tuple(names[k] for names, k in zip(classes, best, strict=True))
    gold_probs = gold_part_probabilities(classes, probs, gold)
    p_gold = math.prod(gold_probs)
    if predicted != gold:
        best_other = math.prod(float(p[k]) for p, k in zip(probs, best, strict=True))
    else:
        best_other = max(
            _runner_up(p, k) * math.prod(gold_probs[:c] + gold_probs[c + 1 :])
            for c, (p, k) in enumerate(zip(probs, best, strict=True))
        )
    return predicted, p_gold, p_gold - best_other


def gold_part_probabilities(
    classes: Sequence[Sequence[str]], probs: Sequence[torch.Tensor], gold: tuple[str, ...]
) -> list[float]:
    """The probability of each gold part, 0 for a part never seen in training."""
    return [_prob_of(names, p, value) for names, p, value in zip(classes, probs, gold, strict=True)]


def _prob_of(classes: Sequence[str], probs: torch.Tensor, value: str) -> float:
    return float(probs[classes.index(value)]) if value in classes else 0.0


def _runner_up(probs: torch.Tensor, best: int) -> float:
    """Largest probability other than ``probs[best]`` (0 when there is a single class)."""
    if probs.numel() == 1:
        return 0.0
    return float(torch.cat((probs[:best], probs[best + 1 :])).max())
