"""Quality classifier: a fastText-style linear model trained on user-given good and bad examples.

DCLM and FineWeb-Edu keep documents a fastText classifier finds close to chosen positives. The
model here is fastText's with one output: the mean of learned weights of the document's hashed
word n-grams (lower-cased words and punctuation marks, n = 1..``ngrams``), plus a bias, through
a sigmoid. It is our own small numpy code (sparse AdaGrad updates), since the ``fasttext``
package needs a compiler or a third-party wheel. The score of a document is the probability that
it is positive; ``threshold`` is the least score kept. Trained models are content-addressed
under ``cache_root()/curation/classifier/<key>``.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from transferlab.artifacts import cache_root, cached_dir, content_key
from transferlab.config.base import BaseConfig
from transferlab.curation.corpus import SourceList, corpus_digest
from transferlab.curation.selection import Selection
from transferlab.data.sources import iter_texts

FORMAT_VERSION = 1
TOKEN = re.compile(r"\w+|[^\w\s]")
EPS = 1e-10


class QualityClassifierConfig(BaseConfig):
    """Trained on the documents of ``positive`` (label 1) and ``negative`` (label 0), the two
    classes weighted equally; ``threshold`` selects and is left out of the score key."""

    positive: SourceList  # sources of documents like those to keep (label 1)
    negative: SourceList  # sources of documents like those to drop (label 0)
    ngrams: int = Field(default=2, ge=1, le=5)  # features: word n-grams for n = 1..ngrams
    buckets: int = Field(default=1 << 18, ge=16)  # hash buckets the n-grams share (weights)
    max_words: int = Field(default=4096, gt=0)  # only a document's first max_words words count
    epochs: int = Field(default=10, gt=0)  # passes over the training documents
    lr: float = Field(default=0.5, gt=0)  # AdaGrad's base step
    seed: int = 0  # the order training visits the documents in
    # the least score kept: a document's probability of being positive
    threshold: float = Field(default=0.5, ge=0, le=1)

    SELECTION_FIELDS: ClassVar[frozenset[str]] = frozenset({"threshold"})

    def build(self) -> QualityClassifier:
        return QualityClassifier(self)


def hashed_features(text: str, ngrams: int, buckets: int, max_words: int) -> np.ndarray:
    """Bucket ids of the word n-grams of ``text`` (its first ``max_words`` words), one per
    occurrence; crc32 keeps them the same in every process and on every machine."""
    words = TOKEN.findall(text.lower())[:max_words]
    grams = [
        " ".join(words[i : i + n]) for n in range(1, ngrams + 1) for i in range(len(words) - n + 1)
    ]
    return np.array([zlib.crc32(g.encode("utf-8")) % buckets for g in grams], dtype=np.int64)


class QualityClassifier:
    """Scores: the probability of "positive"; trained (or loaded) on first use."""

    name = "classifier"
    metadata_key = "quality_score"
    label_key = None

    def __init__(self, cfg: QualityClassifierConfig) -> None:
        self.cfg = cfg
        self._key: str | None = None
        self._weights: np.ndarray | None = None
        self._bias = 0.0

    def model_key(self) -> str:
        """Content key of the trained model (reads the examples once to hash them)."""
        if self._key is None:
            training = self.cfg.to_dict()
            for name in self.cfg.SELECTION_FIELDS:
                training.pop(name)
            digests = [corpus_digest(self.cfg.positive), corpus_digest(self.cfg.negative)]
            self._key = content_key(training, digests, FORMAT_VERSION)
        return self._key

    def score_key(self) -> str:
        return content_key("classifier", self.model_key())

    def _load(self) -> None:
        if self._weights is None:
            root = cache_root() / "curation" / "classifier" / self.model_key()
            cached_dir(root, self._train)
            self._weights = np.load(root / "weights.npy", allow_pickle=False)
            self._bias = json.loads((root / "info.json").read_text())["bias"]

    def features(self, text: str) -> np.ndarray:
        cfg = self.cfg
        return hashed_features(text, cfg.ngrams, cfg.buckets, cfg.max_words)

    def score_texts(self, texts: list[str]) -> list[float]:
        self._load()
        bags = [FeatureBag.of(self.features(t)) for t in texts]
        return [_sigmoid(bag.logit(self._weights, self._bias)) for bag in bags]

    def select(self, scores: np.ndarray) -> Selection:
        keep = scores >= self.cfg.threshold
        labels = ["pass" if k else "below_threshold" for k in keep]
        return Selection(keep, labels, {"threshold": self.cfg.threshold})

    def _train(self, out: Path) -> None:
        """Fit the weights and save them to ``out``."""
        positives = [self.features(t) for t in iter_texts(self.cfg.positive)]
        negatives = [self.features(t) for t in iter_texts(self.cfg.negative)]
        if not positives or not negatives:
            raise ValueError("classifier: positive and negative sources must each give documents")
        labels = np.array([1.0] * len(positives) + [0.0] * len(negatives))
        bags = [FeatureBag.of(f) for f in positives + negatives]
        weights, bias = fit_logistic(bags, labels, self.cfg)
        predictions = np.array([bag.logit(weights, bias) > 0 for bag in bags])
        np.save(out / "weights.npy", weights)
        info = {
            "bias": bias,
            "positives": len(positives),
            "negatives": len(negatives),
            "train_accuracy": float((predictions == labels).mean()),
        }
        (out / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True))


@dataclass(frozen=True)
class FeatureBag:
    """A document's distinct buckets and each one's share of its features: the mean of the
    weights of its features is ``weights[buckets] @ shares``."""

    buckets: np.ndarray
    shares: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureBag:
        buckets, counts = np.unique(features, return_counts=True)
        return cls(buckets, counts / max(1, features.size))

    def logit(self, weights: np.ndarray, bias: float) -> float:
        return float(weights[self.buckets] @ self.shares) + bias


def fit_logistic(
    bags: list[FeatureBag], labels: np.ndarray, cfg: QualityClassifierConfig
) -> tuple[np.ndarray, float]:
    """Logistic regression by per-example AdaGrad, the two classes weighted equally; each step
    touches only the example's buckets (fastText's sparse updates), in a seeded order."""
    weights = np.zeros(cfg.buckets)
    squares = np.zeros(cfg.buckets)  # AdaGrad's running sum of squared gradients per bucket
    bias, bias_squares = 0.0, 0.0
    n_positive = labels.sum()
    class_weight = np.where(labels == 1, 0.5 / n_positive, 0.5 / (len(labels) - n_positive))
    class_weight *= len(labels)  # mean weight 1, so lr means the same for any class balance
    rng = np.random.default_rng(cfg.seed)
    for _ in range(cfg.epochs):
        for i in rng.permutation(len(bags)):
            bag = bags[i]
            error = class_weight[i] * (_sigmoid(bag.logit(weights, bias)) - labels[i])
            grad = error * bag.shares
            squares[bag.buckets] += grad**2
            weights[bag.buckets] -= cfg.lr * grad / np.sqrt(squares[bag.buckets] + EPS)
            bias_squares += error**2
            bias -= cfg.lr * error / np.sqrt(bias_squares + EPS)
    return weights, bias


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
