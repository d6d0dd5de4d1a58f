"""``code_function_name``: examples that never show the answer, rows, a rigged and a random model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.sources import TextDocument
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.evaluate import row_columns
from transferlab.evaluate.code_name import (
    WORD,
    CodeFunctionNameConfig,
    build_name_examples,
    cut_name,
    eligible_functions,
)
from transferlab.evaluate.code_tasks import is_heldout, pretraining_documents
from transferlab.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::transferlab.data.sources.SkippedDocumentsWarning")

REAL = {
    "name": "code_function_name",
    "modules": ["email", "asyncio", "logging", "urllib"],
    "heldout_fraction": 0.5,
    "max_tokens": 64,
    "max_examples": None,
}


@pytest.fixture(scope="module")
def real_cfg() -> CodeFunctionNameConfig:
    return TASKS.parse(REAL)


@pytest.fixture(scope="module")
def tokenizer(real_cfg: CodeFunctionNameConfig) -> TextTokenizer:
    texts = (doc.text for doc in pretraining_documents(real_cfg, split="function"))
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=512), texts)


def _model(tokenizer: TextTokenizer, seed: int, max_seq_len: int = 64) -> nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=max_seq_len
    )
    return build_model(cfg)


def _doc(text: str, name: str) -> TextDocument:
    return TextDocument(f"m.py::{name}", text, "python_stdlib", {"name": name, "module": "m"})


def test_cut_name_splits_the_def_line_and_refuses_leaky_functions() -> None:
    text = '@cache\n@other(1)\nasync def fetch_page(url):\n    """Get it."""\n    return url\n'
    fn = cut_name(_doc(text, "fetch_page"))
    assert (fn.head, fn.gap, fn.rest) == (
        "@cache\n@other(1)\nasync def",
        " ",
        text[text.index("(url)") :],
    )
    assert fn.head + fn.gap + fn.name + fn.rest == text
    # A longer identifier containing the name is not a mention of it.
    assert cut_name(_doc("def get(x):\n    return getattr(x, 'a')\n", "get")) is not None
    recursive = "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n"
    mentioned = 'def double(x):\n    """double(x) is x + x."""\n    return x + x\n'
    assert cut_name(_doc(recursive, "fact")) is None
    assert cut_name(_doc(mentioned, "double")) is None


def test_examples_never_show_the_real_name(real_cfg, tokenizer) -> None:
    examples = build_name_examples(real_cfg, tokenizer, budget=64)
    assert len(examples) == len(eligible_functions(real_cfg)) > 150
    pool = {ex.function.name for ex in examples}
    assert len(pool) == len(examples)  # names are unique, so each is the answer once
    for ex in examples:
        doc, (context, choices) = ex.function.doc, ex.request
        assert is_heldout(doc.metadata["path"], 0.5, 0) and doc.metadata["kind"] == "function"
        assert len(set(ex.choices)) == 4 and ex.choices[ex.gold] == ex.function.name
        assert set(ex.choices) <= pool
        words = set(WORD.findall(doc.text))
        assert not (set(ex.choices) - {ex.function.name}) & words  # no distractor in the code
        # The code every choice shares shows no candidate name, the real one included.
        name_len = len(tokenizer.encode(" " + ex.choices[ex.gold]))
        rest = choices[ex.gold][name_len:]
        shown = WORD.findall(tokenizer.decode(context[1:]) + tokenizer.decode(rest))
        assert not set(ex.choices) & set(shown)
        for name, choice in zip(ex.choices, choices, strict=True):
            assert choice == tokenizer.encode(" " + name) + rest
            assert len(context) + len(choice) <= 64


def test_untruncated_gold_choice_is_the_function_itself(real_cfg, tokenizer) -> None:
    for ex in build_name_examples(real_cfg, tokenizer, budget=100_000)[:50]:
        context, choices = ex.request
        assert context[0] == tokenizer.special.bos
        assert tokenizer.decode(context[1:] + choices[ex.gold]) == ex.function.doc.text


def test_rows_schema_stable_ids_and_untouched_model(real_cfg, tokenizer) -> None:
    model = _model(tokenizer, seed=0)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    rows = real_cfg.build().run(model, tokenizer, None, "run-a", seed=0)
    assert all(torch.equal(model.state_dict()[name], value) for name, value in before.items())
    examples = build_name_examples(real_cfg, tokenizer, budget=64)
    assert [row["example_id"] for row in rows] == [ex.function.doc.id for ex in examples]
    for row, ex in zip(rows, examples, strict=True):
        assert tuple(row) == row_columns(real_cfg)
        assert (row["run_id"], row["task"], row["split"]) == ("run-a", "code_function_name", "test")
        assert row["target"] == ex.function.name and row["prediction"] in ex.choices
        assert row["group"] == ex.function.doc.metadata["module"].split(".")[0]
        assert row["correct"] == float(row["prediction"] == row["target"])
        assert (row["margin"] > 0) == bool(row["correct"])
        assert 0 <= row["p_correct"] <= 1 and row["acc_norm"] in (0.0, 1.0)
    # Another model, another training seed and any world: the same examples, so rows pair.
    other = real_cfg.build().run(_model(tokenizer, seed=1), tokenizer, "any", "run-b", seed=7)
    assert [row["example_id"] for row in other] == [row["example_id"] for row in rows]
    assert [row["target"] for row in other] == [row["target"] for row in rows]
    assert real_cfg.build().run(model, tokenizer, None, "run-a", seed=3) == rows


def test_random_model_is_near_chance(real_cfg, tokenizer) -> None:
    rows = real_cfg.build().run(_model(tokenizer, seed=0), tokenizer, None, "r", seed=0)
    accuracy = sum(row["correct"] for row in rows) / len(rows)
    assert abs(accuracy - 1 / real_cfg.n_choices) < 0.12


class TrueTextModel(nn.Module):
    """Puts all its probability on the next token of any of the given true sequences that the
    input so far is a prefix of (uniform over them), and none anywhere else."""

    def __init__(self, sequences: list[list[int]], vocab_size: int, max_seq_len: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.config = SimpleNamespace(max_seq_len=max_seq_len)
        self.next: dict[tuple[int, ...], set[int]] = {}
        for seq in sequences:
            for i in range(1, len(seq)):
                self.next.setdefault(tuple(seq[:i]), set()).add(seq[i])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        logits = torch.full((batch, length, self.vocab_size), -50.0)
        for b in range(batch):
            ids = input_ids[b].tolist()
            for i in range(length):
                for token in self.next.get(tuple(ids[: i + 1]), ()):
                    logits[b, i, token] = 0.0
        return logits


def _write_corpus(root: Path, n_files: int = 8) -> None:
    """Files of distinct functions: unique names and arguments, so no two bodies coincide."""
    (root / "pkg").mkdir()
    for f in range(n_files):
        defs = [
            f"def task_{f}_{k}(arg_{f}_{k}, limit={k}):\n"
            f'    """Step {k} of part {f}."""\n'
            f"    return [arg_{f}_{k}] * limit\n"
            for k in range(3)
        ]
        (root / "pkg" / f"part{f}.py").write_text("\n\n".join(defs))


def test_a_model_that_knows_the_code_gets_every_example_right(tmp_path: Path) -> None:
    _write_corpus(tmp_path)
    cfg = CodeFunctionNameConfig(root=str(tmp_path), modules=None, heldout_fraction=0.5)
    texts = [doc.text for doc in cfg.source("file").iter_documents()]
    tokenizer = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), texts)
    examples = build_name_examples(cfg, tokenizer, budget=256)
    assert len(examples) >= 6
    truths = [ex.request[0] + ex.request[1][ex.gold] for ex in examples]
    model = TrueTextModel(truths, tokenizer.vocab_size, max_seq_len=256)
    rows = cfg.build().run(model, tokenizer, None, "oracle", seed=0)
    assert [row["correct"] for row in rows] == [1.0] * len(examples)
    assert all(row["prediction"] == row["target"] and row["margin"] > 0.5 for row in rows)


def test_long_heads_keep_their_end_within_the_model_length(tmp_path: Path) -> None:
    (tmp_path / "deco.py").write_text(
        "".join(f"@register('handler number {i}')\n" for i in range(40))
        + "def decorated(x):\n    return x\n\n\ndef plain(y):\n    return y\n\n\n"
        + "def third(z):\n    return z\n"
    )
    cfg = CodeFunctionNameConfig(
        root=str(tmp_path), modules=None, heldout_fraction=0.999, n_choices=3
    )
    tokenizer = train_tokenizer(
        TokenizerConfig(kind="bpe", vocab_size=300), [(tmp_path / "deco.py").read_text()]
    )
    model = _model(tokenizer, seed=0, max_seq_len=32)
    rows = cfg.build().run(model, tokenizer, None, "r", seed=0)  # fits, or forward would raise
    assert sorted(row["target"] for row in rows) == ["decorated", "plain", "third"]
    example = next(
        ex for ex in build_name_examples(cfg, tokenizer, 32) if ex.function.name == "decorated"
    )
    context, choices = example.request
    assert len(context) == 16 and context[0] == tokenizer.special.bos
    assert tokenizer.decode(context[1:]).endswith("')\ndef")
    assert all(len(context) + len(choice) <= 32 for choice in choices)


def test_a_tokenizer_that_reads_code_as_unknown_words_is_refused(tmp_path: Path) -> None:
    """A word-level tokenizer trained on prose maps code to <unk>: scoring it would measure how
    the model reads "some unknown word", so the task refuses in one line, naming the fix."""
    _write_corpus(tmp_path, n_files=4)
    cfg = CodeFunctionNameConfig(root=str(tmp_path), modules=None, heldout_fraction=0.5)
    words = train_tokenizer(TokenizerConfig(kind="word"), ["Ada was born in Paris.\n"])
    with pytest.raises(
        ValueError,
        match=r"^code_function_name: example .* \(<unk>\), so its score would be biased; .*tokenizer.kind=bpe\)$",
    ):
        cfg.build().run(_model(words, seed=0), words, None, "r", seed=0)


def test_too_few_functions_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text("def only(x):\n    return x\n")
    cfg = CodeFunctionNameConfig(root=str(tmp_path), modules=None, heldout_fraction=0.999)
    tokenizer = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), ["def only(x)"])
    with pytest.raises(ValueError, match=r"1 eligible held-out function\(s\) for n_choices=4"):
        cfg.build().run(_model(tokenizer, seed=0), tokenizer, None, "r", seed=0)


def test_distractors_are_drawn_from_the_same_names_as_the_answers(real_cfg, tokenizer) -> None:
    """No familiarity bias: every distractor is some example's real name (each name is the
    answer once), and with BPE nothing scored is unknown (there is no <unk> to score)."""
    examples = build_name_examples(real_cfg, tokenizer, 64)
    golds = [ex.choices[ex.gold] for ex in examples]
    distractors = {c for ex in examples for i, c in enumerate(ex.choices) if i != ex.gold}
    assert len(set(golds)) == len(golds) and distractors <= set(golds)
    assert tokenizer.token_to_id("<unk>") is None
