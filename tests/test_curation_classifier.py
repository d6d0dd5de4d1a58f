"""Quality classifier: hashed word n-grams, trained on user-given positives and negatives."""

import json
import random

import numpy as np
import pytest

from transferlab.config import ConfigError, validate
from transferlab.curation import CurationConfig, DedupConfig, QualityClassifier
from transferlab.curation.classifier import QualityClassifierConfig, hashed_features
from transferlab.data.sources import PythonStdlibConfig, TextDocument

SPAM_WORDS = [
    "cheap",
    "deals",
    "free",
    "prize",
    "winner",
    "click",
    "here",
    "now",
    "buy",
    "best",
    "price",
    "offer",
    "limited",
    "time",
    "only",
    "discount",
    "casino",
    "bonus",
    "watches",
    "pills",
    "online",
    "exclusive",
    "guaranteed",
    "money",
    "fast",
    "subscribe",
]
NO_DEDUP = DedupConfig(exact=False, minhash=None)


def spam(n_docs: int, seed: int) -> list[str]:
    """Spam-like documents: runs of sales words with exclamation marks."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sentences = [
            " ".join(rng.choices(SPAM_WORDS, k=rng.randint(4, 10))) + "!" for _ in range(5)
        ]
        docs.append(" ".join(sentences))
    return docs


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


@pytest.fixture
def classifier_cfg(tmp_path):
    def make(**fields):
        data = {
            "positive": [
                {"name": "python_stdlib", "modules": ["json", "textwrap"], "split": "function"}
            ],
            "negative": [
                {"name": "jsonl", "path": write_jsonl(tmp_path / "neg.jsonl", spam(40, 0))}
            ],
            **fields,
        }
        return validate(QualityClassifierConfig, data)

    return make


def test_features_are_hashed_ngrams_stable_across_processes():
    features = hashed_features("Hello, hello world", ngrams=2, buckets=1000, max_words=100)
    # words: hello , hello world -> 4 unigrams + 3 bigrams
    assert features.size == 7
    assert features[0] == features[2]  # "hello" twice, same bucket
    assert np.all((features >= 0) & (features < 1000))
    assert hashed_features("Hello, hello world", 2, 1000, 100).tolist() == features.tolist()
    assert hashed_features("a b c d e", ngrams=1, buckets=10, max_words=3).size == 3


def test_classifier_separates_held_out_positives_and_negatives(classifier_cfg):
    classifier = classifier_cfg().build()
    held_out_code = [
        d.text
        for d in PythonStdlibConfig(modules=["csv", "shlex"], split="function").iter_documents()
    ]
    held_out_spam = spam(20, seed=1)
    scores = np.array(classifier.score_texts(held_out_code + held_out_spam))
    truth = np.array([1] * len(held_out_code) + [0] * len(held_out_spam))
    accuracy = ((scores >= 0.5) == truth).mean()
    assert len(held_out_code) == 12
    assert accuracy > 0.9
    assert np.all((scores > 0) & (scores < 1))


def test_training_is_deterministic_and_cached(classifier_cfg, monkeypatch):
    first = classifier_cfg().build()
    a = first.score_texts(["def f(x):\n    return x", "free prize click now!"])
    trained = []
    monkeypatch.setattr(QualityClassifier, "_train", lambda self, out: trained.append(out))
    second = classifier_cfg(threshold=0.9).build()  # a threshold does not change the model
    assert second.model_key() == first.model_key()
    assert second.score_texts(["def f(x):\n    return x", "free prize click now!"]) == a
    assert trained == []
    assert classifier_cfg(epochs=6).build().model_key() != first.model_key()


def test_threshold_sweep_reuses_the_score_file(tmp_path, classifier_cfg, monkeypatch):
    calls = []
    score_texts = QualityClassifier.score_texts
    monkeypatch.setattr(
        QualityClassifier,
        "score_texts",
        lambda self, texts: calls.append(len(texts)) or score_texts(self, texts),
    )
    code = PythonStdlibConfig(modules=["csv"], split="function").iter_documents()
    corpus = [*code, *(TextDocument(f"spam{i}", t, "spam") for i, t in enumerate(spam(5, 2)))]

    def run(name, threshold):
        cfg = CurationConfig(dedup=NO_DEDUP, classifier=classifier_cfg(threshold=threshold))
        return cfg.run(corpus, tmp_path / name, scores_dir=tmp_path / "scores")

    low = run("low", 0.5)
    assert calls == [len(corpus)]
    assert [d.source for d in low.documents()] == ["python_stdlib"] * (len(corpus) - 5)
    scores = [d.metadata["quality_score"] for d in low.documents()]
    assert min(scores) >= 0.5
    strict = run("strict", float(np.median(scores)))
    assert calls == [len(corpus)]  # reused
    stage = strict.report.stage("classifier")
    assert stage.details["score_file_reused"] is True
    assert stage.details["threshold"] == float(np.median(scores))
    assert strict.report.output.documents == sum(s >= np.median(scores) for s in scores)
    assert set(stage.reasons) == {"classifier_below_threshold"}


def test_missing_classes_fail_in_one_line(classifier_cfg):
    with pytest.raises(ConfigError, match="negative: missing"):
        validate(
            QualityClassifierConfig, {"positive": [{"name": "python_stdlib", "modules": ["json"]}]}
        )
    with pytest.raises(ConfigError, match="threshold: got 1.5; expected"):
        classifier_cfg(threshold=1.5)
