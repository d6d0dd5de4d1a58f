"""``lm_eval``: lm-evaluation-harness tasks run by lm-eval itself on our model, its per-sample
outputs as our rows; lm-eval's logged log-likelihoods are checked against our own scoring."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval")

from transferlab.config import TASKS, ModelConfig, TokenizerConfig  # noqa: E402
from transferlab.data.tokenizer import train_tokenizer  # noqa: E402
from transferlab.evaluate import IDENTITY_COLUMNS, greedy_generate, score_choices  # noqa: E402
from transferlab.evaluate.continuation import encode_pair  # noqa: E402
from transferlab.evaluate.lm_eval_task import LmEvalConfig, describe  # noqa: E402
from transferlab.evaluate.readers import reading_error  # noqa: E402
from transferlab.models import build_model  # noqa: E402

DOCS = [
    {"q": "The cat sat on the", "choices": ["mat", "sky", "old tree"], "label": 0},
    {"q": "Water is", "choices": ["dry", "wet"], "label": 1},
    {"q": "One plus one is", "choices": ["two", "three", "four"], "label": 0},
    {"q": "The sky is", "choices": ["blue", "a cat", "wet"], "label": 0},
]
TEXTS = [
    "the cat sat on the mat and the dog sat on the old tree",
    "water is wet and the sky is blue",
    "one plus one is two and two plus two is four, the cat said to the dog; " * 2,
]
WINDOW = 16  # the model's max_seq_len: the long texts need several rolling windows


@pytest.fixture(scope="module")
def tokenizer():
    corpus = [*TEXTS, *(d["q"] + " " + " ".join(d["choices"]) for d in DOCS)]
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), corpus)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=WINDOW
    )
    return build_model(cfg).eval()


def _write_task(folder: Path, name: str, body: str, docs: list[dict]) -> Path:
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    path = folder / f"{name}.yaml"
    path.write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\ntest_split: test\n{body}"
    )
    return path


MULTIPLE_CHOICE = (
    'output_type: multiple_choice\ndoc_to_text: "{{q}}"\ndoc_to_choice: "{{choices}}"\n'
    "doc_to_target: label\n"
)
ROLLING = 'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{text}}"\n'


def _run(cfg: LmEvalConfig, model, tokenizer, seed: int = 0):
    task = cfg.build()
    rows = task.run(model, tokenizer, None, "run0", seed=seed)
    return task, rows


def test_multiple_choice_loglikelihoods_are_ours_and_acc_is_their_argmax(
    tmp_path, model, tokenizer
) -> None:
    path = _write_task(tmp_path, "toy_mc", MULTIPLE_CHOICE, DOCS)
    cfg = TASKS.parse({"name": "lm_eval", "tasks": [str(path)]})
    task, rows = _run(cfg, model, tokenizer)
    names = ["acc", "acc_norm", "p_correct"]
    assert [m.name for m in cfg.metrics] == names and cfg.task_name == "lm_eval:toy_mc"
    assert [tuple(row) for row in rows] == [(*IDENTITY_COLUMNS, *names)] * len(DOCS)
    samples = {s["doc_id"]: s for s in task.samples["toy_mc"]}
    for doc_id, (doc, row) in enumerate(zip(DOCS, rows, strict=True)):
        # Ours, built here without encode_pair: lm-eval's target delimiter is one space.
        context = [tokenizer.special.bos, *tokenizer.encode(doc["q"])]
        choices = [tokenizer.encode(" " + choice) for choice in doc["choices"]]
        (ours,) = score_choices(model, [(context, choices)], pad_id=tokenizer.special.pad)
        logged = [resp[0] for resp in samples[doc_id]["filtered_resps"]]
        assert logged == pytest.approx(ours, abs=1e-4)
        best = max(range(len(ours)), key=ours.__getitem__)
        assert row["acc"] == float(best == doc["label"]) == samples[doc_id]["acc"]
        assert row["p_correct"] == pytest.approx(torch.tensor(ours).softmax(0)[doc["label"]])
        assert (row["example_id"], row["group"], row["split"]) == (
            f"toy_mc/{doc_id}",
            "toy_mc",
            "test",
        )
        assert (row["prediction"], row["target"]) == (
            doc["choices"][best],
            doc["choices"][doc["label"]],
        )
        assert row["task"] == "lm_eval:toy_mc" and row["run_id"] == "run0"


def test_rolling_loglikelihoods_match_our_windowed_scoring(tmp_path, model, tokenizer) -> None:
    path = _write_task(tmp_path, "toy_ppl", ROLLING, [{"text": t} for t in TEXTS])
    cfg = TASKS.parse({"name": "lm_eval", "tasks": [str(path)]})
    task, rows = _run(cfg, model, tokenizer)
    assert [(m.name, m.higher_is_better) for m in cfg.metrics] == [
        ("word_perplexity", False),
        ("byte_perplexity", False),
        ("bits_per_byte", False),
    ]
    samples = {s["doc_id"]: s for s in task.samples["toy_ppl"]}
    lengths = [len(tokenizer.encode(t)) for t in TEXTS]
    assert min(lengths) <= WINDOW < 2 * WINDOW < max(lengths)  # one window, and several
    for doc_id, (text, row) in enumerate(zip(TEXTS, rows, strict=True)):
        ids = tokenizer.encode(text)
        # Chunks of WINDOW tokens, the first after <bos>, each later one after as many tokens
        # before it as fill the window (one, but for a shorter last chunk).
        chunks = []
        for start in range(0, len(ids), WINDOW):
            end = min(start + WINDOW, len(ids))
            context = ids[end - WINDOW - 1 : start] if start else [tokenizer.special.bos]
            chunks.append((context, [ids[start:end]]))
        ours = sum(s for (s,) in score_choices(model, chunks, pad_id=tokenizer.special.pad))
        (logged,) = samples[doc_id]["filtered_resps"]
        assert logged == pytest.approx(ours, abs=1e-4)
        n_bytes, n_words = len(text.encode("utf-8")), len(re.split(r"\s+", text))
        assert row["bits_per_byte"] == pytest.approx(-ours / n_bytes / math.log(2), rel=1e-5)
        assert row["word_perplexity"] == pytest.approx(math.exp(-ours / n_words), rel=1e-5)
        assert (row["prediction"], row["target"]) == ("", "")


def test_generation_is_our_greedy_continuation_cut_at_the_stop(tmp_path, model, tokenizer) -> None:
    docs = [{"q": d["q"], "answer": d["choices"][d["label"]]} for d in DOCS]
    body = (
        'output_type: generate_until\ndoc_to_text: "{{q}}"\ndoc_to_target: "{{answer}}"\n'
        'generation_kwargs:\n  until: ["e"]\n  max_gen_toks: 6\n  do_sample: false\n'
    )
    path = _write_task(tmp_path, "toy_gen", body, docs)
    cfg = TASKS.parse({"name": "lm_eval", "tasks": [str(path)], "max_gen_toks": 4})
    _, rows = _run(cfg, model, tokenizer)
    assert [m.name for m in cfg.metrics] == ["exact_match"]
    for doc, row in zip(docs, rows, strict=True):
        prompt = [tokenizer.special.bos, *tokenizer.encode(doc["q"])]
        (ids,) = greedy_generate(model, [prompt], tokenizer.special.eos, 4)  # the cap: 4 < 6
        expected = tokenizer.decode(ids).split("e")[0]
        assert row["prediction"] == expected and row["target"] == doc["answer"]
        assert row["exact_match"] == float(expected.strip() == doc["answer"])


def test_encode_pair_moves_whitespace_and_cuts_the_context_on_the_left(tokenizer) -> None:
    bos = tokenizer.special.bos
    context, continuation = encode_pair(tokenizer, "water is ", "wet", window=64)
    assert (context, continuation) == (
        [bos, *tokenizer.encode("water is")],
        tokenizer.encode(" wet"),
    )
    full = [bos, *tokenizer.encode(TEXTS[0])]
    cut, _ = encode_pair(tokenizer, TEXTS[0], " sky", window=8)
    assert cut == full[-(8 + 1 - len(tokenizer.encode(" sky"))) :]
    with pytest.raises(ValueError, match="does not fit the model's window of 2 tokens"):
        encode_pair(tokenizer, "water", " " + TEXTS[0], window=2)


def test_metric_names_keep_only_those_and_unknown_ones_are_named(tmp_path) -> None:
    path = str(_write_task(tmp_path, "toy_pick", MULTIPLE_CHOICE, DOCS))
    cfg = TASKS.parse({"name": "lm_eval", "tasks": [path], "metric_names": ["acc_norm"]})
    assert [m.name for m in cfg.metrics] == ["acc_norm", "p_correct"]
    assert cfg.metric("acc_norm").higher_is_better and cfg.metric("acc") is None
    bad = TASKS.parse({"name": "lm_eval", "tasks": [path], "metric_names": ["f2"]})
    message = "lm_eval: metric_names ['f2'] are not metrics of task 'toy_pick' (it computes ['acc', 'acc_norm'])"
    with pytest.raises(ValueError, match=re.escape(message)):
        describe(bad)
    assert LmEvalConfig.metrics == ()  # known only once a config names its tasks


def test_bad_configs_are_refused_at_validation(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"task YAML files \['nowhere/t.yaml'\] do not exist"):
        TASKS.parse({"name": "lm_eval", "tasks": ["nowhere/t.yaml"]})
    with pytest.raises(ValueError, match=r"include folders \['nowhere'\] do not exist"):
        TASKS.parse({"name": "lm_eval", "tasks": ["x"], "include": ["nowhere"]})
    path = str(_write_task(tmp_path, "toy_read", MULTIPLE_CHOICE, DOCS))
    cfg = TASKS.parse({"name": "lm_eval", "tasks": [path]})
    assert reading_error(cfg, "prefix") is None
    assert "lm_eval answers lm-eval's log-likelihood" in reading_error(cfg, "bidirectional")


def test_a_hub_dataset_fails_in_one_line_without_the_network(tmp_path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(
        "task: hub_task\ndataset_path: transferlab-nobody/no-such-dataset\ntest_split: test\n"
        + MULTIPLE_CHOICE
    )
    cfg = TASKS.parse({"name": "lm_eval", "tasks": [str(path)]})
    message = (
        f"lm_eval: '{path}' needs data from the Hugging Face hub and lm-eval runs offline here; "
        "write a task YAML over local files"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        describe(cfg)


@pytest.mark.slow  # indexes every task lm-eval ships (~15-30 s)
def test_an_unknown_task_name_is_one_line() -> None:
    cfg = TASKS.parse({"name": "lm_eval", "tasks": ["no_such_task_anywhere"]})
    with pytest.raises(ValueError, match="'no_such_task_anywhere' is neither an lm-eval task name"):
        describe(cfg)


def test_an_experiment_runs_lm_eval_on_every_run_and_its_rows_pair(tmp_path, monkeypatch) -> None:
    from transferlab.experiment import ExperimentSpec, load_results, run_experiment

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS * 8))
    path = _write_task(tmp_path, "toy_exp", MULTIPLE_CHOICE, DOCS)
    base = {
        "data": {"sources": [{"name": "jsonl", "path": str(corpus)}], "seq_len": 16},
        "tokenizer": {"kind": "bpe", "vocab_size": 300},
        "model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "max_seq_len": 32},
        "schedule": {"name": "constant"},
        "trainer": {"max_steps": 2, "batch_size": 2, "eval_interval": 2, "eval_batches": 1},
    }
    base["trainer"] |= {"checkpoint_interval": 2, "progress": False}
    spec = ExperimentSpec.model_validate(
        {
            "name": "lmeval",
            "base": base,
            "axes": {"width": {"narrow": {"model.d_model": 16}, "wide": {"model.d_model": 32}}},
            "seeds": [0, 1],
            "tasks": [{"name": "lm_eval", "tasks": [str(path)]}],
            "compare": {"baseline": "narrow", "metric": "acc"},
        }
    )
    result = run_experiment(spec, tmp_path / "exp", log=lambda _: None)
    rows = load_results(tmp_path / "exp").examples.to_pylist()
    assert {r["task"] for r in rows} == {"lm_eval:toy_exp"} and len(rows) == 2 * 2 * len(DOCS)
    ids = {
        (v, s): sorted(r["example_id"] for r in rows if (r["variant"], r["seed"]) == (v, s))
        for v in ("narrow", "wide")
        for s in (0, 1)
    }
    assert all(found == [f"toy_exp/{i}" for i in range(len(DOCS))] for found in ids.values())
    comparison = next(c for c in result.summary["comparisons"] if c["metric"] == "acc")
    assert (comparison["variant"], comparison["reference"]) == ("wide", "narrow")
    assert comparison["n_examples"] == len(DOCS) and comparison["higher_is_better"] is True
    declared = result.summary["metrics"]["lm_eval:toy_exp"]["declared"]
    assert [m["name"] for m in declared] == ["acc", "acc_norm", "p_correct"]


def test_the_files_a_config_reads_key_its_evaluations(tmp_path, monkeypatch) -> None:
    """Task YAMLs, include folders, what a YAML includes, its !function module and its local
    data files: editing any of them (same path) gives its evaluations a new key."""
    from transferlab.experiment.planner import eval_key

    monkeypatch.chdir(tmp_path)  # relative data files are read from the working directory
    shared, suite = tmp_path / "shared", tmp_path / "suite"
    shared.mkdir()
    suite.mkdir()
    (shared / "base.yaml").write_text("output_type: multiple_choice\ntest_split: test\n")
    (tmp_path / "docs.jsonl").write_text(json.dumps(DOCS[0]) + "\n")
    own = tmp_path / "own.yaml"
    own.write_text(
        "task: own\ninclude: shared/base.yaml\ndataset_path: json\n"
        "dataset_kwargs:\n  data_files:\n    test: [docs.jsonl, more/*.jsonl]\n"
    )
    (suite / "suite_task.yaml").write_text(
        "task: suite_task\nprocess_docs: !function helpers.keep\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files: {tmp_path / 'absent.jsonl'}\n"
    )
    (suite / "helpers.py").write_text("def keep(docs):\n    return docs\n")
    (tmp_path / "unrelated.jsonl").write_text("{}\n")
    cfg = LmEvalConfig(tasks=[str(own), "suite_task"], include=[str(suite)])
    assert cfg.input_files() == sorted(
        [
            own,
            shared / "base.yaml",
            Path("docs.jsonl").absolute(),
            suite / "suite_task.yaml",
            suite / "helpers.py",
            tmp_path / "absent.jsonl",
        ]
    )
    key = eval_key("run", cfg)
    (tmp_path / "unrelated.jsonl").write_text('{"other": 1}\n')
    assert eval_key("run", cfg) == key
    for edited in (tmp_path / "docs.jsonl", shared / "base.yaml", suite / "helpers.py"):
        edited.write_text(edited.read_text() + "\n# edited\n")
        assert eval_key("run", cfg) != key
        key = eval_key("run", cfg)
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "extra.jsonl").write_text("{}\n")  # the glob now matches a file
    assert eval_key("run", cfg) != key


@pytest.mark.parametrize("window", [1, 2, 3, 5, 8, 13])
def test_our_rolling_windows_are_lm_evals_disjoint_rolling_windows(window) -> None:
    """``loglikelihood_rolling`` answers with ``likelihood.rolling_windows``: exactly the
    windows lm-eval's own ``get_rolling_token_windows`` + ``make_disjoint_window`` cut."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    from transferlab.evaluate.likelihood import rolling_windows

    for length in range(40):
        ids = list(range(100, 100 + length))
        theirs = [
            (list(context), [list(predicted)])
            for context, predicted in map(
                make_disjoint_window, get_rolling_token_windows(ids, 7, window, 1)
            )
        ]
        ours = [
            (list(context), [list(choice[0])])
            for context, choice in rolling_windows(ids, 7, window)
        ]
        assert ours == theirs, length
