"""Property-based fuzzing of what users hand transferlab: run configs, experiment specs, dotted
overrides and data files (jsonl, parquet, txt, tokenized shards). Every input is either accepted
or refused with a one-line ``ValueError`` (``ConfigError`` and ``SourceError`` are ones); no other
exception ever escapes. About 4,000 cases in all (``FUZZ_EXAMPLES`` per property).
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from transferlab.config import RunConfig  # noqa: E402
from transferlab.config.loading import load_config, set_dotted, validate  # noqa: E402
from transferlab.data.shards import TokenizedFolder, write_tokenized  # noqa: E402
from transferlab.data.sources import SOURCES  # noqa: E402
from transferlab.experiment import load_experiment  # noqa: E402

pytestmark = pytest.mark.slow
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 500))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run and machine: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The fields of a run config, and some that do not exist, as dotted paths.
RUN_PATHS = [
    "name",
    "seed",
    "world.name",
    "world.num_people",
    "world.seed",
    "world.rephrasings",
    "tokenizer.kind",
    "tokenizer.vocab_size",
    "data.seq_len",
    "data.val_fraction",
    "data.sources",
    "data.sources.0",
    "data.sources.0.name",
    "data.sources.0.path",
    "model.preset",
    "model.d_model",
    "model.n_layers",
    "model.n_heads",
    "model.d_ff",
    "model.qk_norm",
    "model.attention",
    "model.mlp.name",
    "model.linear",
    "objective",
    "objective.name",
    "objective.mask_prob",
    "optimizer.name",
    "optimizer.lr",
    "optimizer.weight_decay",
    "schedule.name",
    "schedule.warmup_steps",
    "trainer.max_steps",
    "trainer.batch_size",
    "trainer.micro_batch_size",
    "trainer.eval_interval",
    "trainer.checkpoint_interval",
    "trainer.out_dir",
    "init.from_run",
    "init.step",
    "nope",
    "model.nope",
    "trainer.max_steps.deeper",
    "data.sources.7.name",
    "0",
    "",
]
SPEC_PATHS = [
    "name",
    "base",
    "base.model.d_model",
    "base.trainer.max_steps",
    "axes",
    "axes.v",
    "axes.v.a",
    "axes.v.a.model.d_model",
    "axes.v.b",
    "seeds",
    "seeds.0",
    "tasks",
    "tasks.0",
    "tasks.0.name",
    "tasks.0.epochs",
    "compare",
    "compare.baseline",
    "compare.metric",
    "expect",
    "expect.variant",
    "expect.direction",
    "expect.task",
    "stages",
    "stages.0",
    "stages.0.name",
    "stages.0.init",
    "sizes",
    "nope",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["clm", "mlm", "bios", "word", "bpe", "micro", "adamw", "cosine", "qa_score"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def assert_one_line_refusal(exc: BaseException) -> None:
    assert isinstance(exc, ValueError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message and "\n" not in message, repr(message)


def accepted_or_refused(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # the property: nothing but a one-line ValueError
        assert_one_line_refusal(exc)
        return None


@FUZZ
@given(st.dictionaries(st.sampled_from(RUN_PATHS), values, max_size=4))
def test_fuzz_run_configs(tmp_path_factory, changes):
    """A valid tiny run config with a few fields set to anything, loaded from a YAML file."""
    from conftest import TINY_RUN

    path = tmp_path_factory.mktemp("cfg") / "run.yaml"
    data = accepted_or_refused(lambda: set_dotted(TINY_RUN, changes))
    if data is None:
        return
    path.write_text(yaml.safe_dump(data))
    accepted_or_refused(load_config, RunConfig, path)


@FUZZ
@given(st.lists(st.sampled_from(RUN_PATHS), max_size=4), st.lists(st.text(max_size=16), max_size=4))
def test_fuzz_dotted_overrides(keys, raws):
    """``key=value`` strings as typed on a command line, values parsed as YAML."""
    overrides = [f"{k}={v}" for k, v in zip(keys, raws, strict=False)] + raws[len(keys) :]
    accepted_or_refused(lambda: load_config(RunConfig, None, overrides))


@FUZZ
@given(st.dictionaries(st.sampled_from(SPEC_PATHS), values, max_size=4))
def test_fuzz_experiment_specs(tmp_path_factory, changes):
    spec = {
        "name": "fuzz",
        "base": {"model": {"d_model": 32, "n_layers": 1, "n_heads": 2}},
        "axes": {"v": {"a": {"seed": 1}, "b": {"seed": 2}}},
        "seeds": [0],
        "tasks": [{"name": "qa_score"}],
        "compare": {"baseline": "a"},
    }
    data = accepted_or_refused(lambda: set_dotted(spec, changes))
    if data is None:
        return
    path = tmp_path_factory.mktemp("exp") / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    accepted_or_refused(load_experiment, path)


@FUZZ
@given(st.text(alphabet=string.printable + "äé\u2028", max_size=120))
def test_fuzz_yaml_text(tmp_path_factory, text):
    """Whatever a config file holds, as text: syntax errors, lists, scalars, tabs."""
    path = tmp_path_factory.mktemp("raw") / "run.yaml"
    path.write_text(text, encoding="utf-8")
    accepted_or_refused(load_config, RunConfig, path)
    accepted_or_refused(load_experiment, path)


@FUZZ
@given(
    st.sampled_from(["jsonl", "text_files"]),
    st.lists(st.binary(max_size=40) | st.text(max_size=30).map(str.encode), max_size=5),
    st.dictionaries(
        st.sampled_from(["text_field", "id_field", "limit", "max_line_chars"]), scalars, max_size=2
    ),
)
def test_fuzz_text_data_files(tmp_path_factory, kind, lines, options):
    """Raw bytes, broken JSON, records without the text field, odd options."""
    folder = tmp_path_factory.mktemp("data")
    suffix = {"jsonl": ".jsonl", "text_files": ".txt"}[kind]
    (folder / f"a{suffix}").write_bytes(b"\n".join(lines))
    if lines:  # and a well-formed record, so some cases are read
        (folder / f"b{suffix}").write_bytes(json.dumps({"text": lines[0].hex()}).encode())
    _read_source(kind, folder, options)


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.text(max_size=20), st.none(), st.integers(-(2**63), 2**63 - 1), st.binary(max_size=8)
        ),
        max_size=6,
    ),
    st.sampled_from(["text", "body", "0"]),
    st.dictionaries(st.sampled_from(["text_field", "id_field", "batch_size"]), scalars, max_size=2),
)
def test_fuzz_parquet_files(tmp_path_factory, cells, column, options):
    folder = tmp_path_factory.mktemp("pq")
    kinds = {type(c) for c in cells if c is not None}
    if len(kinds) > 1:  # one column, one type: mixed cells go in as their repr
        cells = [None if c is None else repr(c) for c in cells]
    pq.write_table(pa.table({column: pa.array(cells)}), folder / "a.parquet")
    (folder / "b.parquet").write_bytes(b"PAR1 not really")
    _read_source("parquet", folder, options)


@FUZZ
@given(
    st.lists(st.lists(st.integers(min_value=0, max_value=70_000), max_size=6), max_size=4),
    st.integers(min_value=1, max_value=70_000),
    st.sampled_from(["none", "truncate_ds", "truncate_index", "garbage_metadata", "drop_index"]),
    st.integers(min_value=0, max_value=64),
)
def test_fuzz_tokenized_shards(tmp_path_factory, docs, vocab_size, damage, cut):
    """Token ids in or out of the vocabulary, then a shard damaged on disk and read back."""
    folder = tmp_path_factory.mktemp("shards") / "tok"
    written = accepted_or_refused(write_tokenized, docs, folder, vocab_size=vocab_size)
    if written is None or not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if (
            damage == "truncate_ds"
            and path.suffix == ".ds"
            or damage == "truncate_index"
            and path.name.endswith(".index")
        ):
            path.write_bytes(path.read_bytes()[:cut])
        elif damage == "garbage_metadata" and path.name.endswith(".metadata"):
            path.write_bytes(bytes(range(cut)))
        elif damage == "drop_index" and path.name.endswith(".index"):
            path.unlink()

    def read() -> None:
        shards = TokenizedFolder(folder)
        for i in range(len(shards.doc_ends)):
            shards.document(i)
        shards.tokens(0, int(shards.file_starts[-1]))

    accepted_or_refused(read)


def _read_source(kind: str, folder: Path, options: dict[str, Any]) -> None:
    def read() -> None:
        source = validate(SOURCES.get(kind), {"name": kind, "path": str(folder), **options})
        for doc in source.iter_documents():
            assert isinstance(doc.text, str) and doc.text

    accepted_or_refused(read)
