"""``text_probe``: a linear probe on frozen features of labelled texts from the user's files.

Each text is read as ``<bos>`` + its tokens (cut to ``max_tokens``, and to the model's length)
under the attention the model was trained with, and its hidden state at ``layer`` is pooled
over the text: the state at the last token (``pooling: last``) or the mean over its tokens
(``mean``). A multinomial logistic regression (``probe``: standardized features, L2 weight
``l2``, L-BFGS from zero) trains on the training examples and predicts the test examples' labels.
The fit has no randomness, so the run's seed is unused. ``layer: all`` probes every layer, each
reported as task ``"<task>@L<i>"`` (0 = embeddings). Data fields and rows: ``classification``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from transferlab.config.registry import TASKS
from transferlab.evaluate.base import Subject, Task
from transferlab.evaluate.classification import ClassificationConfig, class_rows, text_ids
from transferlab.evaluate.code_tasks import token_budget
from transferlab.evaluate.features import Layer, Pooling, probe_layers
from transferlab.evaluate.probe import fit_linear_probe
from transferlab.evaluate.readers import ALL_READINGS


@TASKS.register("text_probe")
class TextProbeConfig(ClassificationConfig):
    name: Literal["text_probe"] = "text_probe"
    readings: ClassVar[tuple[str, ...]] = ALL_READINGS
    layer: Layer = -1  # index into the residual stream; -1: after the last block
    pooling: Pooling = "mean"  # the last token's state, or the mean over the text's tokens
    l2: float = Field(default=1e-3, ge=0)  # the probe's L2 penalty (standardized features)
    max_iter: int = Field(default=200, gt=0)  # L-BFGS iterations of the probe's fit
    batch_size: int = Field(default=64, gt=0)  # sequences per forward to read features

    def build(self) -> TextProbeTask:
        return TextProbeTask(self)


class TextProbeTask(Task[TextProbeConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg = self.cfg
        splits = cfg.splits()
        layers = probe_layers(subject.model, cfg.layer)
        budget = token_budget(subject.model, cfg.max_tokens)
        examples = splits.train + splits.test
        sequences = [text_ids(subject.tokenizer, e.text, budget) for e in examples]
        features = subject.reader.features(
            subject.model, sequences, layers, cfg.pooling, cfg.batch_size
        )
        train, test = slice(0, len(splits.train)), slice(len(splits.train), len(examples))
        labels = [e.label for e in splits.train]
        rows = []
        for slot, layer in enumerate(layers):
            probe = fit_linear_probe(features[slot, train], labels, cfg.l2, cfg.max_iter)
            task = cfg.task_name if cfg.layer != "all" else f"{cfg.task_name}@L{layer}"
            probs = probe.probabilities(features[slot, test])
            rows += class_rows(probs, splits.test, probe.classes, subject.run_id, task)
        return rows
