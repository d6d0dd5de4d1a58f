"""Fine-tuning classification heads on a model's pooled features, for a model of any objective.

The heads read the model as its objective trained it (``Reader.feature_forward``: causal, prefix
or bidirectional attention, each sequence read as if alone): its final hidden states (after the
final norm), pooled over each sequence (the last token or the mean over its tokens), go through
one linear layer per label set, a *head* (an attribute, a part of a date, the classes of a text).
The model and the heads train together (every weight, or LoRA adapters on the model and the
heads whole) on the engine (``finetune.run_finetune``), so a masked-LM, prefix-LM or
discriminator model is fine-tuned without its output head over the vocabulary, which such a
model may not have or may use for something else.

The heads start at zero: before training every class of a head is equally likely, and the
initialization draws nothing. An example labels every head or some of them (``IGNORE_INDEX``
elsewhere); the loss is the summed cross entropy of its labels, averaged over the labels of the
step (plus the model parts' auxiliary losses, weighted per label as in ``token_prediction_loss``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.artifacts import content_key
from transferlab.evaluate.features import Pooling, pool
from transferlab.evaluate.finetune import (
    FinetuneResult,
    FinetuneSettings,
    run_finetune,
    trainable_copy,
)
from transferlab.evaluate.inference import length_batches, model_device
from transferlab.evaluate.readers import Reader
from transferlab.objectives import IGNORE_INDEX, Batch, LossOutput, Objective

# (token ids, per head the index of its class or IGNORE_INDEX)
LabelledSequence = tuple[Sequence[int], Sequence[int]]


@dataclass
class HeadsOutput:
    logits: list[torch.Tensor]  # per head [B, its classes]
    aux_losses: dict[str, torch.Tensor]  # the model parts' (a mixture's load balancing ...)


class ClassifierModel(nn.Module):
    """``model`` with linear heads of ``n_classes`` outputs on its pooled final features."""

    def __init__(
        self,
        model: nn.Module,
        width: int,
        n_classes: Sequence[int],
        reader: Reader,
        pooling: Pooling,
    ) -> None:
        super().__init__()
        self.model = model
        self.heads = nn.ModuleList(nn.Linear(width, k) for k in n_classes)
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.reader = reader
        self.pooling = pooling

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> HeadsOutput:
        """The heads' logits for right-padded ``inputs`` [B, L] of ``lengths`` real tokens."""
        out = self.reader.feature_forward(self.model, inputs, lengths)
        pooled = pool(out.hidden, lengths, self.pooling)
        return HeadsOutput([head(pooled) for head in self.heads], out.aux_losses)


def padded(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, L] and the lengths [B] of ``sequences``."""
    lengths = torch.tensor([len(ids) for ids in sequences])
    if not len(lengths) or int(lengths.min()) == 0:
        raise ValueError("a classifier needs at least one sequence and no empty ones")
    inputs = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, ids in enumerate(sequences):
        inputs[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return inputs, lengths


class Classify(Objective):
    """Batches of labelled sequences; the summed cross entropy of every head's labels."""

    def __init__(self, pad_id: int, reader: Reader) -> None:
        self.pad_id = pad_id
        self.attention = reader.attention

    def make_batch(self, source: Sequence[LabelledSequence], generator: torch.Generator) -> Batch:
        inputs, lengths = padded([ids for ids, _ in source], self.pad_id)
        labels = torch.tensor([list(labels) for _, labels in source], dtype=torch.long)
        return {"inputs": inputs, "lengths": lengths, "labels": labels}

    def n_targets(self, batch: Batch) -> int:
        return int((batch["labels"] != IGNORE_INDEX).sum())

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        out = model(batch["inputs"], batch["lengths"])
        labels = batch["labels"]
        total = sum(
            F.cross_entropy(
                logits.float(), labels[:, h], ignore_index=IGNORE_INDEX, reduction="sum"
            )
            for h, logits in enumerate(out.logits)
        )
        n = self.n_targets(batch)
        aux = {name: value.float() * n for name, value in out.aux_losses.items()}
        return LossOutput(total, n, aux)


def finetune_classifier(
    model: nn.Module,
    examples: Sequence[LabelledSequence],
    n_classes: Sequence[int],
    reader: Reader,
    pooling: Pooling,
    settings: FinetuneSettings,
    seed: int,
    pad_id: int = 0,
    run_dir: Path | None = None,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune a copy of ``model`` (a ``Transformer``, or one whose ``config.d_model`` is its
    width) with heads of ``n_classes`` on ``examples``; seeded by ``seed``, resumable in
    ``run_dir`` as ``finetune`` is. The result's model is the ``ClassifierModel``."""
    if not examples:
        raise ValueError("the classifier got no training examples; the train split selects none")
    _check_labels([labels for _, labels in examples], n_classes)
    device = model_device(model)
    trainable = trainable_copy(model, settings, seed)
    classifier = ClassifierModel(trainable, model.config.d_model, n_classes, reader, pooling)
    identity = {
        "examples": content_key([[list(ids), list(labels)] for ids, labels in examples]),
        "heads": list(n_classes),
        "reading": reader.attention,
        "pooling": pooling,
    }
    objective = Classify(pad_id, reader)
    return run_finetune(
        classifier.to(device), objective, examples, settings, seed, identity, run_dir, progress
    )


def _check_labels(labels: Sequence[Sequence[int]], n_classes: Sequence[int]) -> None:
    for example in labels:
        fits = len(example) == len(n_classes) and all(
            label == IGNORE_INDEX or 0 <= label < k
            for label, k in zip(example, n_classes, strict=True)
        )
        if not fits:
            raise ValueError(
                f"an example's labels {list(example)} do not fit heads of {list(n_classes)} "
                f"classes; give one class index (or {IGNORE_INDEX}) per head"
            )


def head_probabilities(
    classifier: ClassifierModel,
    sequences: Sequence[Sequence[int]],
    pad_id: int = 0,
    batch_size: int = 64,
) -> list[torch.Tensor]:
    """Per head, its class probabilities [len(sequences), its classes] (float64, CPU)."""
    device = model_device(classifier)
    out = [
        torch.empty(len(sequences), head.out_features, dtype=torch.float64)
        for head in classifier.heads
    ]
    classifier.eval()
    with torch.inference_mode():
        for rows in length_batches([len(ids) for ids in sequences], batch_size):
            inputs, lengths = padded([sequences[i] for i in rows], pad_id)
            logits = classifier(inputs.to(device), lengths.to(device)).logits
            for h, head_logits in enumerate(logits):
                out[h][rows] = head_logits.double().softmax(-1).cpu()
    return out
