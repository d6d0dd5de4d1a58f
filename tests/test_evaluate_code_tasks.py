"""The held-out split of the standard-library code tasks: by file, seeded, and never pretrained on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from torch import nn

from transferlab.config import TASKS
from transferlab.data.sources import TextDocument
from transferlab.evaluate import code_tasks
from transferlab.evaluate.code_name import CodeFunctionNameConfig
from transferlab.evaluate.code_tasks import (
    is_heldout,
    pretraining_documents,
    sample,
    split_functions,
    token_budget,
)

# email/mime/__init__.py is empty: its skip warning is expected.
pytestmark = pytest.mark.filterwarnings("ignore::transferlab.data.sources.SkippedDocumentsWarning")

REAL = {"modules": ["email", "json", "logging"], "heldout_fraction": 0.4}


def test_split_is_by_file_and_matches_the_hash() -> None:
    cfg = CodeFunctionNameConfig(**REAL)
    split = split_functions(cfg)
    pretraining = {doc.metadata["path"] for doc in split.pretraining}
    heldout = {doc.metadata["path"] for doc in split.heldout}
    assert pretraining and heldout and not pretraining & heldout
    assert all(is_heldout(path, 0.4, 0) for path in heldout)
    assert not any(is_heldout(path, 0.4, 0) for path in pretraining)
    assert all(doc.metadata["kind"] == "function" for doc in split.pretraining + split.heldout)

    code_tasks._split.cache_clear()  # a fresh read gives the same split
    again = split_functions(cfg)
    assert [doc.id for doc in again.heldout] == [doc.id for doc in split.heldout]
    assert [doc.id for doc in again.pretraining] == [doc.id for doc in split.pretraining]


def test_held_out_fraction_seed_and_monotonicity() -> None:
    paths = [f"pkg{i}/mod{i % 7}.py" for i in range(4000)]
    quarter = {p for p in paths if is_heldout(p, 0.25, seed=0)}
    assert abs(len(quarter) / len(paths) - 0.25) < 0.03
    # Raising the fraction only adds files; another seed draws other files.
    assert quarter < {p for p in paths if is_heldout(p, 0.5, seed=0)}
    assert quarter != {p for p in paths if is_heldout(p, 0.25, seed=1)}


def test_pretraining_documents_are_exactly_the_other_files() -> None:
    cfg = CodeFunctionNameConfig(**REAL)
    every_file = [doc.id for doc in cfg.source("file").iter_documents()]
    kept = [doc.id for doc in pretraining_documents(cfg)]
    assert kept == [path for path in every_file if not is_heldout(path, 0.4, 0)]
    assert 0 < len(kept) < len(every_file)
    functions = list(pretraining_documents(cfg, split="function"))
    assert {doc.metadata["kind"] for doc in functions} == {"function", "class"}
    assert {doc.metadata["path"] for doc in functions} <= set(kept)


def _write_package(root: Path, files: int) -> list[str]:
    """``pkg/m{i}.py`` files, each with a function of its own and one identical copy of
    ``shared``; returns the relative paths."""
    (root / "pkg").mkdir()
    paths = []
    for i in range(files):
        text = f"def own_{i}(x):\n    return x + {i}\n\n\ndef shared(x):\n    return x * 2\n"
        (root / "pkg" / f"m{i}.py").write_text(text)
        paths.append(f"pkg/m{i}.py")
    return paths


def test_heldout_copies_of_pretraining_functions_are_dropped(tmp_path: Path) -> None:
    paths = _write_package(tmp_path, files=12)
    cfg = CodeFunctionNameConfig(root=str(tmp_path), modules=None, heldout_fraction=0.5)
    held = sorted(p for p in paths if is_heldout(p, 0.5, 0))  # sorted as the source reads them
    assert 0 < len(held) < len(paths)  # both sides have files
    split = split_functions(cfg)
    assert [doc.id for doc in split.heldout] == [f"{p}::own_{p[5:-3]}" for p in held]
    assert sum(doc.metadata["name"] == "shared" for doc in split.pretraining) == len(paths) - len(
        held
    )


def _docs(n: int) -> list[TextDocument]:
    return [TextDocument(f"d{i}", "x", "test") for i in range(n)]


def test_sample_is_seeded_ordered_and_nested() -> None:
    docs = _docs(50)
    ten = sample(docs, 10, seed=0, purpose="examples")
    assert len(ten) == 10 and ten == sorted(ten, key=docs.index)
    assert sample(docs, 10, seed=0, purpose="examples") == ten
    assert set(doc.id for doc in ten) < set(doc.id for doc in sample(docs, 20, 0, "examples"))
    assert sample(docs, 10, seed=1, purpose="examples") != ten
    assert sample(docs, None, 0, "examples") == docs == sample(docs, 50, 0, "examples")


def test_token_budget_follows_the_model() -> None:
    model = nn.Linear(2, 2)
    assert token_budget(model, 256) == 256  # no declared limit
    model.config = SimpleNamespace(max_seq_len=64)
    assert token_budget(model, 256) == 64
    assert token_budget(model, 32) == 32


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "code_function_name", "heldout_fraction": 0}, "greater than 0"),
        ({"name": "code_function_name", "heldout_fraction": 1.0}, "less than 1"),
        ({"name": "code_function_name", "modules": []}, "modules is empty"),
        ({"name": "code_function_name", "n_choices": 1}, "greater than or equal to 2"),
        ({"name": "code_function_name", "max_tokens": 8}, "greater than or equal to 16"),
        ({"name": "code_module", "top_k_modules": 1}, "greater than or equal to 2"),
        ({"name": "code_module", "pooling": "max"}, "'last' or 'mean'"),
        ({"name": "code_module", "split": "file"}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TASKS.parse(spec)


def test_both_tasks_are_registered_with_modest_defaults() -> None:
    assert {"code_function_name", "code_module"} <= set(TASKS.names())
    cfg = TASKS.parse("code_module")
    assert cfg.modules == list(code_tasks.DEFAULT_MODULES) and cfg.heldout_fraction == 0.25
