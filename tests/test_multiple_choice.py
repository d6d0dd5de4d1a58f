"""``multiple_choice``: items from a JSONL or parquet file, scored by log-likelihood exactly as
lm-evaluation-harness encodes and normalizes them."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from tiny_experiment import tiny_base
from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import train_tokenizer
from transferlab.evaluate import IDENTITY_COLUMNS
from transferlab.evaluate.continuation import encode_pair
from transferlab.evaluate.multiple_choice import build_items, content_id
from transferlab.experiment import ExperimentSpec, load_results, run_experiment
from transferlab.models import build_model
from transferlab.worlds.bios import BiosConfig

pytestmark = pytest.mark.filterwarnings("ignore::transferlab.data.sources.SkippedDocumentsWarning")

ITEMS = [
    {"context": "The sky is", "choices": ["blue", "green", "loud"], "gold": 0},
    {"context": "Grass is", "choices": ["blue", "green"], "gold": 1},
    {"context": "A lion is", "choices": ["quiet", "loud", "green"], "gold": 1},
]
SHOTS_TEXT = "The sky is blue\n\nGrass is green\n\nA lion is loud\n\n"
METRICS = ("correct", "acc_norm", "p_correct", "margin", "norm_p_correct")


class Uniform(nn.Module):
    """Equal logits everywhere: every token costs exactly log(vocab) nats."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*ids.shape, self.vocab) + self.anchor


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def write_parquet(path: Path, records: list[dict[str, Any]]) -> str:
    pq.write_table(pa.Table.from_pylist(records), path)
    return str(path)


@pytest.fixture(scope="module")
def tokenizer():
    texts = [SHOTS_TEXT * 3, "x quiet loud éé abcde f"]
    return train_tokenizer(TokenizerConfig(kind="word"), texts)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return build_model(
        ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2)
    ).eval()


def task(path: str, **fields: Any):
    return TASKS.parse({"name": "multiple_choice", "path": path, **fields})


def hand_logprob(model: nn.Module, context: list[int], choice: list[int]) -> float:
    """log p(choice | context) read off one plain forward pass of the whole sequence."""
    ids = torch.tensor([context + choice])
    with torch.no_grad():
        logprobs = model(ids)[0].double().log_softmax(-1)
    return sum(float(logprobs[len(context) + i - 1, token]) for i, token in enumerate(choice))


@pytest.mark.parametrize(
    ("context", "continuation"),
    [("The sky is", " blue"), ("The sky is ", "blue"), ("Grass is\n\n", " green")],
)
def test_encode_pair_is_lm_eval_encoding_after_bos(tokenizer, context, continuation) -> None:
    template = pytest.importorskip("lm_eval.api.model").TemplateLM
    lm = SimpleNamespace(backend="causal", tok_encode=tokenizer.encode)
    lm_context, lm_continuation = template._encode_pair(lm, context, continuation)
    assert encode_pair(tokenizer, context, continuation) == (
        [tokenizer.special.bos, *lm_context],
        lm_continuation,
    )
    # Trailing whitespace of the context is scored with the continuation.
    assert tokenizer.decode(encode_pair(tokenizer, context, continuation)[1]) == (
        context[len(context.rstrip()) :] + continuation
    )


def test_scores_are_the_exact_log_likelihood_sums(tmp_path, tokenizer, model) -> None:
    cfg = task(write_jsonl(tmp_path / "items.jsonl", ITEMS))
    rows = cfg.build().run(model, tokenizer, None, "run0", seed=3)
    assert [tuple(row) for row in rows] == [(*IDENTITY_COLUMNS, *METRICS)] * 3
    for item, row in zip(ITEMS, rows, strict=True):
        context = [tokenizer.special.bos, *tokenizer.encode(item["context"])]
        choices = [tokenizer.encode(" " + c) for c in item["choices"]]
        sums = torch.tensor([hand_logprob(model, context, c) for c in choices])
        probs = sums.softmax(0)
        gold = item["gold"]
        assert row["p_correct"] == pytest.approx(float(probs[gold]), abs=1e-6)
        others = [float(p) for j, p in enumerate(probs) if j != gold]
        assert row["margin"] == pytest.approx(float(probs[gold]) - max(others), abs=1e-6)
        assert row["prediction"] == item["choices"][int(sums.argmax())]
        assert row["correct"] == float(int(sums.argmax()) == gold)
        per_char = sums / torch.tensor([len(c) for c in item["choices"]], dtype=sums.dtype)
        assert row["acc_norm"] == float(int(per_char.argmax()) == gold)
        assert row["target"] == item["choices"][gold]
        assert row["example_id"] == content_id(item["context"], item["choices"], gold)
        assert (row["task"], row["group"], row["split"], row["run_id"]) == (
            "multiple_choice",
            "all",
            "test",
            "run0",
        )


@pytest.mark.parametrize(("normalization", "acc_norm"), [("chars", 1.0), ("bytes", 0.0)])
def test_length_normalization_flips_the_choice(tmp_path, tokenizer, normalization, acc_norm):
    # Uniform: "éé" costs 1 token, "abcde f" 2, so acc picks "éé"; per character (2 vs 7)
    # "abcde f" wins, per byte (4 vs 7) "éé" does; per token they tie (first choice wins).
    item = {"context": "The sky is", "choices": ["éé", "abcde f"], "gold": 1}
    path = write_jsonl(tmp_path / "items.jsonl", [item])
    uniform = Uniform(tokenizer.vocab_size)
    (row,) = task(path, normalization=normalization).build().run(uniform, tokenizer, None, "r", 0)
    assert (row["correct"], row["acc_norm"], row["prediction"]) == (0.0, acc_norm, "éé")
    # p_correct is the softmax of the sums, -log V and -2 log V.
    v = tokenizer.vocab_size
    assert row["p_correct"] == pytest.approx(math.exp(-2 * math.log(v)) / (1 / v + 1 / v**2))
    (tokens,) = task(path, normalization="tokens").build().run(uniform, tokenizer, None, "r", 0)
    assert tokens["acc_norm"] == 0.0


def test_gold_as_index_or_text_in_jsonl_or_parquet_gives_the_same_rows(
    tmp_path, tokenizer, model
) -> None:
    as_text = [{**item, "gold": item["choices"][item["gold"]]} for item in ITEMS]
    paths = [
        write_jsonl(tmp_path / "index.jsonl", ITEMS),
        write_jsonl(tmp_path / "text.jsonl", as_text),
        write_parquet(tmp_path / "index.parquet", ITEMS),
        write_parquet(tmp_path / "text.parquet", as_text),
    ]
    results = [task(path).build().run(model, tokenizer, None, "r", 0) for path in paths]
    assert all(rows == results[0] for rows in results[1:])
    assert [row["target"] for row in results[0]] == ["blue", "green", "loud"]


def test_id_and_group_fields_name_the_rows(tmp_path, tokenizer, model) -> None:
    records = [
        {"q": it["context"], "opts": it["choices"], "ans": it["gold"], "key": f"k{i}", "topic": i}
        for i, it in enumerate(ITEMS)
    ]
    fields = {"context_field": "q", "choices_field": "opts", "gold_field": "ans"}
    cfg = task(
        write_parquet(tmp_path / "items.parquet", records),
        **fields,
        id_field="key",
        group_field="topic",
        max_items=2,
    )
    rows = cfg.build().run(model, tokenizer, None, "r", 0)
    assert [(r["example_id"], r["group"]) for r in rows] == [("k0", "0"), ("k1", "1")]


def test_fewshot_contexts_are_lm_eval_s_and_the_same_on_every_call(tmp_path, tokenizer) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    cfg = task(path, fewshot_path=path, num_fewshot=2)
    first = build_items(cfg, tokenizer, budget=64)
    other_tokenizer = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), [SHOTS_TEXT])
    assert [b.context for b in build_items(cfg, other_tokenizer, 64)] == [b.context for b in first]
    answered = [f"{it['context']} {it['choices'][it['gold']]}" for it in ITEMS]
    for i, built in enumerate(first):
        shots = [a for j, a in enumerate(answered) if j != i]  # never the item itself
        assert built.context in (
            f"{shots[0]}\n\n{shots[1]}\n\n{ITEMS[i]['context']}",
            f"{shots[1]}\n\n{shots[0]}\n\n{ITEMS[i]['context']}",
        )
        assert list(built.request[0]) == encode_pair(tokenizer, built.context, " x")[0]
    separated = task(path, fewshot_path=path, num_fewshot=1, separator="\n")
    assert build_items(separated, tokenizer, 64)[0].context.endswith(" green\nThe sky is")


def test_a_long_context_is_cut_on_the_left_after_bos(tmp_path, tokenizer) -> None:
    item = {"context": "The sky is blue\n\nA lion is", "choices": ["loud", "quiet"]}
    cfg = task(write_jsonl(tmp_path / "items.jsonl", [{**item, "gold": 0}]))
    ((context, choices),) = [b.request for b in build_items(cfg, tokenizer, budget=5)]
    full = tokenizer.encode(item["context"])
    assert list(context) == [tokenizer.special.bos, *full[-3:]]  # 5 - 1 choice token
    assert [list(c) for c in choices] == [tokenizer.encode(" loud"), tokenizer.encode(" quiet")]


def test_a_bad_field_name_is_one_line_naming_the_field_and_the_option(tmp_path, tokenizer):
    jsonl = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    parquet = write_parquet(tmp_path / "items.parquet", ITEMS)
    model = Uniform(tokenizer.vocab_size)
    with pytest.raises(ValueError) as caught:
        task(jsonl, choices_field="options").build().run(model, tokenizer, None, "r", 0)
    assert str(caught.value) == (
        "multiple_choice: record items.jsonl:1 has no field 'options' (fields: context, "
        "choices, gold); set choices_field to one of them"
    )
    with pytest.raises(ValueError) as caught:
        task(parquet, context_field="question").build().run(model, tokenizer, None, "r", 0)
    assert str(caught.value) == (
        "multiple_choice: parquet: items.parquet has no field 'question' (fields: context, "
        "choices, gold); set context_field to one of them"
    )
    with pytest.raises(ValueError, match=r"^multiple_choice: 3 record\(s\) of .* are no items "):
        task(jsonl, context_field="question").build().run(model, tokenizer, None, "r", 0)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"choices": ["blue"], "gold": 0}, "'choices' is ['blue']; it must be a list of at least"),
        ({"choices": ["blue", "green"], "gold": 2}, "gold 2 ('gold') is neither an index below 2"),
        ({"choices": ["blue", "green"], "gold": "red"}, "gold 'red' ('gold') is neither an"),
        ({"choices": ["blue", ""], "gold": 0}, "every choice must be a non-empty string"),
        ({"choices": ["blue", "purple"], "gold": 0}, "choice 'purple' of item "),
    ],
)
def test_bad_items_are_refused_in_one_line(tmp_path, tokenizer, record, message) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", [{"context": "The sky is", **record}])
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        task(path).build().run(Uniform(tokenizer.vocab_size), tokenizer, None, "r", 0)
    assert "\n" not in str(caught.value)


def test_duplicate_items_are_refused_since_rows_pair_by_id(tmp_path, tokenizer) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", [ITEMS[0], ITEMS[1], ITEMS[0]])
    with pytest.raises(ValueError, match="two items of .* have id .* remove the duplicate"):
        build_items(task(path), tokenizer, 64)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"path": "items.csv"}, "reads .jsonl, .jsonl.gz or .parquet files; got path 'items.csv'"),
        ({"num_fewshot": 2}, "num_fewshot=2 needs fewshot_path"),
        ({"gold_field": "context"}, "repeat a name"),
        ({"normalization": "words"}, "normalization"),
    ],
)
def test_config_errors(fields, message) -> None:
    with pytest.raises(ValidationError, match=message):
        TASKS.parse({"name": "multiple_choice", "path": "items.jsonl", **fields})


def test_an_experiment_on_your_own_items_pairs_rows_across_variants(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    # Items in the words the bios corpus shows (the word tokenizer knows them): which last
    # name follows a person's first and middle names?
    people = [doc.split()[:3] for doc in BiosConfig(num_people=16).build().documents()[:4]]
    items = [
        {"context": f"{first} {middle}", "choices": [p[2] for p in people], "gold": i}
        for i, (first, middle, _) in enumerate(people)
    ]
    path = write_jsonl(tmp_path / "items.jsonl", items)
    spec = ExperimentSpec.model_validate(
        {
            "name": "own-items",
            "base": tiny_base(2),
            "axes": {
                "objective": {"clm": {"objective.name": "clm"}, "mlm": {"objective.name": "mlm"}}
            },
            "seeds": [0],
            "tasks": [{"name": "multiple_choice", "path": path}],
            "compare": {"baseline": "clm", "metric": "p_correct"},
        }
    )
    result = run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    rows = load_results(tmp_path / "exp").examples.to_pylist()
    ids = {v: [r["example_id"] for r in rows if r["variant"] == v] for v in ("clm", "mlm")}
    expected = [content_id(it["context"], it["choices"], it["gold"]) for it in items]
    assert ids["clm"] == ids["mlm"] == expected
    comparison = next(
        c
        for c in result.summary["comparisons"]
        if c["task"] == "multiple_choice" and c["metric"] == "p_correct"
    )
    assert (comparison["variant"], comparison["reference"], comparison["n_examples"]) == (
        "mlm",
        "clm",
        4,
    )
