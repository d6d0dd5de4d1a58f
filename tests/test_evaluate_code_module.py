"""``code_module``: a probe trained on pretraining-side files, evaluated on held-out ones."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate import IDENTITY_COLUMNS
from transferlab.evaluate.code_module import CodeModuleConfig, probe_examples
from transferlab.evaluate.code_tasks import is_heldout, pretraining_documents, split_functions
from transferlab.evaluate.features import pooled_hidden
from transferlab.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::transferlab.data.sources.SkippedDocumentsWarning")

REAL = {
    "name": "code_module",
    "modules": ["email", "asyncio", "logging", "urllib"],
    "heldout_fraction": 0.3,
    "top_k_modules": 3,
    "max_tokens": 64,
    "max_train_examples": 120,
    "max_examples": 80,
}


@pytest.fixture(scope="module")
def real_cfg() -> CodeModuleConfig:
    return TASKS.parse(REAL)


@pytest.fixture(scope="module")
def tokenizer(real_cfg: CodeModuleConfig) -> TextTokenizer:
    texts = (doc.text for doc in pretraining_documents(real_cfg, split="function"))
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=512), texts)


def _model(tokenizer: TextTokenizer, seed: int = 0, n_layers: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=32, n_layers=n_layers, n_heads=2, max_seq_len=64
    )
    return build_model(cfg)


def test_classes_are_the_top_heldout_modules_and_sides_share_no_file(real_cfg) -> None:
    modules, train, test = probe_examples(real_cfg)
    split = split_functions(real_cfg)
    trained = {doc.metadata["module"].split(".")[0] for doc in split.pretraining}
    counts = Counter(
        top for doc in split.heldout if (top := doc.metadata["module"].split(".")[0]) in trained
    )
    assert modules == sorted(m for m, _ in counts.most_common(3))
    assert (len(train), len(test)) == (120, 80)
    assert not {d.metadata["path"] for d in train} & {d.metadata["path"] for d in test}
    assert all(is_heldout(d.metadata["path"], 0.3, 0) for d in test)
    assert not any(is_heldout(d.metadata["path"], 0.3, 0) for d in train)
    assert {d.metadata["module"].split(".")[0] for d in train + test} == set(modules)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_rows_for_every_heldout_example(real_cfg, tokenizer, pooling: str) -> None:
    cfg = real_cfg.model_copy(update={"pooling": pooling})
    modules, _, test = probe_examples(cfg)
    model = _model(tokenizer)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    rows = cfg.build().run(model, tokenizer, None, "run-a", seed=0)
    assert all(torch.equal(model.state_dict()[name], value) for name, value in before.items())
    assert [row["example_id"] for row in rows] == [doc.id for doc in test]
    for row, doc in zip(rows, test, strict=True):
        assert tuple(row) == (*IDENTITY_COLUMNS, "correct", "p_correct", "margin")
        assert (row["run_id"], row["task"], row["split"]) == ("run-a", "code_module", "test")
        assert row["prediction"] in modules
        assert row["target"] == row["group"] == doc.metadata["module"].split(".")[0]
        assert row["correct"] == float(row["prediction"] == row["target"])
        assert (row["margin"] > 0) == bool(row["correct"])
        assert 0 <= row["p_correct"] <= 1
    other = cfg.build().run(_model(tokenizer, seed=1), tokenizer, "any world", "run-b", seed=5)
    assert [row["example_id"] for row in other] == [row["example_id"] for row in rows]


def _write_packages(root: Path) -> None:
    """Three packages whose functions each use their package's own words."""
    words = {"alpha": "apple apricot", "beta": "banana berry", "gamma": "grape guava"}
    for package, vocabulary in words.items():
        (root / package).mkdir()
        first, second = vocabulary.split()
        for f in range(6):
            defs = [
                f"def {first}_{f}_{k}({second}, {first}={k}):\n"
                f"    return {second}.{first}({first} + {k * f})\n"
                for k in range(3)
            ]
            (root / package / f"mod{f}.py").write_text("\n\n".join(defs))


def test_probe_tells_apart_packages_that_use_different_words(tmp_path: Path) -> None:
    _write_packages(tmp_path)
    cfg = CodeModuleConfig(root=str(tmp_path), modules=None, heldout_fraction=0.4, layer=0)
    texts = [doc.text for doc in cfg.source("file").iter_documents()]
    tokenizer = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), texts)
    modules, train, test = probe_examples(cfg)
    assert modules == ["alpha", "beta", "gamma"] and len(test) >= 6
    rows = cfg.build().run(_model(tokenizer), tokenizer, None, "r", seed=0)
    assert [row["correct"] for row in rows] == [1.0] * len(test)


def test_mean_pooling_averages_real_tokens_only(tokenizer) -> None:
    model = _model(tokenizer, n_layers=2)
    sequences = [[1, 40, 41, 42, 43], [1, 50], [1, 60, 61]]
    pooled = pooled_hidden(model, sequences, layers=[0, -1], pooling="mean", batch_size=2)
    assert pooled.shape == (2, 3, 32)
    for i, seq in enumerate(sequences):
        _, hidden = model(torch.tensor([seq]), return_hidden=True)
        torch.testing.assert_close(pooled[0, i], hidden[0][0].mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pooled[1, i], hidden[-1][0].mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no empty ones"):
        pooled_hidden(model, [[1], []], layers=[0], pooling="mean")


def test_errors_name_the_fix(real_cfg, tokenizer) -> None:
    with pytest.raises(ValueError, match=r"layer=5 is out of range .* use -2..1"):
        real_cfg.model_copy(update={"layer": 5}).build().run(
            _model(tokenizer), tokenizer, None, "r", seed=0
        )
    one_package = CodeModuleConfig(modules=["json"], heldout_fraction=0.5)
    with pytest.raises(ValueError, match="a probe needs two, so add packages of several files"):
        probe_examples(one_package)
