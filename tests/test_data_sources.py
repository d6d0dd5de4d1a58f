import ast
import gzip
import json
import sys
import sysconfig
import tracemalloc
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transferlab.config import BaseConfig, ConfigError, validate
from transferlab.data.sources import (
    SOURCES,
    HfDatasetConfig,
    JsonlConfig,
    ParquetConfig,
    PythonStdlibConfig,
    SkippedDocumentsWarning,
    SourceConfig,
    SourceError,
    SourceStats,
    TextDocument,
    TextFilesConfig,
    is_heldout,
    iter_documents,
)

quiet_skips = pytest.mark.filterwarnings("ignore::transferlab.data.sources.SkippedDocumentsWarning")


def write_jsonl(path: Path, lines: list[str | dict], compress: bool = False) -> Path:
    data = "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def read(source: SourceConfig) -> tuple[list[TextDocument], SourceStats]:
    stats = SourceStats()
    return list(source.iter_documents(stats)), stats


# ----------------------------------------------------------------------------- text files
def test_text_files_one_document_per_file_in_sorted_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("second\nfile\n")
    (tmp_path / "a.txt").write_text("first file")
    (tmp_path / "notes.md").write_text("not a .txt file")
    docs, stats = read(TextFilesConfig(path=str(tmp_path)))
    assert docs == [
        TextDocument("a.txt", "first file", "text_files", {"path": "a.txt"}),
        TextDocument("sub/b.txt", "second\nfile\n", "text_files", {"path": "sub/b.txt"}),
    ]
    assert (stats.documents, stats.bytes, stats.total_skipped) == (2, 22, 0)


def test_text_files_paragraphs_and_glob(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_bytes(b"one\r\n  indented\r\n\r\n \t \n\n\ntwo\n")
    (tmp_path / "d" / "y.txt").write_text("three")
    source = TextFilesConfig(path=str(tmp_path / "**" / "*.txt"), split="paragraph", label="web")
    docs, _ = read(source)
    assert [(d.id, d.text, d.source) for d in docs] == [
        ("d/x.txt#0", "one\n  indented", "web"),
        ("d/x.txt#1", "two", "web"),
        ("d/y.txt#0", "three", "web"),
    ]
    assert docs[1].metadata == {"path": "d/x.txt", "paragraph": 1}


def test_bad_files_are_skipped_and_counted_with_one_warning(tmp_path):
    (tmp_path / "a_good.txt").write_text("fine text\n")
    (tmp_path / "b_empty.txt").write_text("")
    (tmp_path / "c_blank.txt").write_text(" \n\t\n")
    (tmp_path / "d_binary.txt").write_bytes(b"GIF89a\x00\x01\x02" + b"x" * 100)
    (tmp_path / "e_latin1.txt").write_bytes("café au lait".encode("latin-1"))
    (tmp_path / "f_long.txt").write_text("short\n" + "y" * 51 + "\nshort\n")
    (tmp_path / "g_nul_late.txt").write_text("t" * 2000 + "\x00")
    (tmp_path / "h_good.txt").write_text("x" * 50)
    source = TextFilesConfig(path=str(tmp_path), max_line_chars=50)
    with pytest.warns(SkippedDocumentsWarning) as record:
        docs, stats = read(source)
    assert [d.id for d in docs] == ["a_good.txt", "h_good.txt"]
    assert stats.skipped == {"empty": 2, "binary": 2, "invalid_utf8": 1, "long_line": 1}
    assert stats.examples["invalid_utf8"] == "e_latin1.txt"
    assert stats.examples["binary"] == "d_binary.txt"
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 6 item(s) and kept 2 document(s)" in message
    assert "binary=2 (e.g. d_binary.txt)" in message
    assert "long_line=1 (e.g. f_long.txt)" in message


# ----------------------------------------------------------------------------- jsonl
def test_jsonl_records_ids_fields_and_gzip(tmp_path):
    lines = [
        {"text": "alpha", "url": "u1", "n": 1},
        "",
        {"text": "beta", "url": "u2", "n": 2},
    ]
    write_jsonl(tmp_path / "a.jsonl", lines)
    write_jsonl(tmp_path / "b.jsonl.gz", lines, compress=True)
    docs, stats = read(JsonlConfig(path=str(tmp_path)))
    assert [d.id for d in docs] == ["a.jsonl:1", "a.jsonl:3", "b.jsonl.gz:1", "b.jsonl.gz:3"]
    assert [d.text for d in docs] == ["alpha", "beta"] * 2
    assert docs[1].metadata == {"path": "a.jsonl", "line": 3, "fields": {"url": "u2", "n": 2}}
    assert docs[2].source == "jsonl"
    assert stats.documents == 4 and not stats.skipped


def test_jsonl_custom_fields(tmp_path):
    write_jsonl(tmp_path / "c.jsonl.gz", [{"body": "x", "uid": 7, "a": 1, "b": 2}], compress=True)
    source = JsonlConfig(
        path=str(tmp_path / "c.jsonl.gz"), text_field="body", id_field="uid", metadata_fields=["b"]
    )
    docs, _ = read(source)
    assert docs == [
        TextDocument("7", "x", "jsonl", {"path": "c.jsonl.gz", "line": 1, "fields": {"b": 2}})
    ]


def test_jsonl_bad_records_are_counted_and_iteration_continues(tmp_path):
    lines = [
        {"text": "ok 1"},
        {"content": "no text field"},
        "{not json",
        "[1, 2]",
        {"text": 42},
        {"text": None},
        {"text": "z" * 300},  # an oversized line, at max_record_bytes=200
        {"text": "ok 2"},
    ]
    path = write_jsonl(tmp_path / "m.jsonl", lines)
    with path.open("ab") as f:
        f.write(b'{"text": "caf\xe9"}\n{"text": "ok 3"}\n')
    source = JsonlConfig(path=str(path), max_record_bytes=200)
    with pytest.warns(SkippedDocumentsWarning, match="missing_field=2 \\(e.g. m.jsonl:2\\)"):
        docs, stats = read(source)
    assert [d.text for d in docs] == ["ok 1", "ok 2", "ok 3"]
    assert [d.metadata["line"] for d in docs] == [1, 8, 10]
    assert stats.skipped == {
        "missing_field": 2,
        "invalid_json": 2,
        "invalid_field": 1,
        "oversized_record": 1,
        "invalid_utf8": 1,
    }
    assert stats.examples["oversized_record"] == "m.jsonl:7"


@quiet_skips
def test_jsonl_empty_binary_and_corrupt_files_are_skipped(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"")
    (tmp_path / "b.jsonl").write_bytes(b"\x7fELF\x00\x00" + b"\n" * 3)
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(b'{"text": "kept"}\n')[:-12])  # cut
    write_jsonl(tmp_path / "d.jsonl", [{"text": "fine"}])
    docs, stats = read(JsonlConfig(path=str(tmp_path)))
    assert [d.id for d in docs] == ["d.jsonl:1"]
    assert stats.skipped == {"empty": 1, "binary": 1, "unreadable": 1}


def test_jsonl_memory_stays_flat_on_a_20mb_file(tmp_path):
    path = tmp_path / "big.jsonl"
    record = json.dumps({"text": "word " * 200}) + "\n"  # about 1 kB
    n = 20 * 1024 * 1024 // len(record) + 1
    with path.open("w") as f:
        for _ in range(n // 1000):
            f.write(record * 1000)
        f.write(record * (n % 1000))
    assert path.stat().st_size > 20 * 1024 * 1024
    tracemalloc.start()
    try:
        count = sum(1 for _ in JsonlConfig(path=str(path)).iter_documents())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    assert peak < 2 * 1024 * 1024


# ----------------------------------------------------------------------------- parquet
def test_parquet_custom_text_field_in_batches(tmp_path):
    table = pa.table({"content": [f"doc {i}" for i in range(5)], "lang": ["en"] * 5})
    pq.write_table(table, tmp_path / "part-0.parquet")
    pq.write_table(table.slice(0, 1), tmp_path / "part-1.parquet")
    source = ParquetConfig(path=str(tmp_path / "*.parquet"), text_field="content", batch_size=2)
    docs, _ = read(source)
    assert [d.id for d in docs] == [f"part-0.parquet:{i}" for i in range(5)] + ["part-1.parquet:0"]
    assert [d.text for d in docs] == [f"doc {i}" for i in range(5)] + ["doc 0"]
    assert docs[3].metadata == {"path": "part-0.parquet", "row": 3, "fields": {"lang": "en"}}


@quiet_skips
def test_parquet_nulls_and_unreadable_files_are_counted(tmp_path):
    pq.write_table(pa.table({"text": ["a", None, "", "b"]}), tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"this is not parquet")
    docs, stats = read(ParquetConfig(path=str(tmp_path)))
    assert [d.text for d in docs] == ["a", "b"]
    assert stats.skipped == {"missing_field": 1, "empty": 1, "unreadable": 1}
    assert stats.examples == {"missing_field": "a.parquet:1", "empty": "a.parquet:2",
                              "unreadable": "b.parquet"}  # fmt: skip


def test_parquet_missing_column_is_a_one_line_error(tmp_path):
    pq.write_table(pa.table({"body": ["a"], "lang": ["en"]}), tmp_path / "a.parquet")
    with pytest.raises(SourceError) as err:
        read(ParquetConfig(path=str(tmp_path / "a.parquet")))
    assert str(err.value) == (
        "parquet: a.parquet has no field 'text' (fields: body, lang); set text_field to one of them"
    )


# ----------------------------------------------------------------------------- HF datasets
def test_saved_hf_dataset_round_trips(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"text": ["one", "two", "three"], "id": ["a", "b", "c"], "score": [0.5, 1.0, 2.0]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "plain"))
    source = HfDatasetConfig(path=str(tmp_path / "plain"), id_field="id", batch_size=2)
    docs, _ = read(source)
    assert docs == [
        TextDocument(i, t, "hf_dataset", {"row": n, "fields": {"score": s}})
        for n, (t, i, s) in enumerate(zip(rows["text"], rows["id"], rows["score"], strict=True))
    ]
    split = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"t": ["x"]}),
         "valid": datasets.Dataset.from_dict({"t": ["y", "z"]})}
    )  # fmt: skip
    split.save_to_disk(str(tmp_path / "dict"))
    valid = HfDatasetConfig(path=str(tmp_path / "dict"), split="valid", text_field="t")
    assert [(d.id, d.text) for d in read(valid)[0]] == [("0", "y"), ("1", "z")]
    with pytest.raises(SourceError, match="'test' is not a split of .* \\(splits: train, valid\\)"):
        HfDatasetConfig(path=str(tmp_path / "dict"), split="test").iter_documents()


def test_hf_hub_dataset_is_streamed(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return datasets.Dataset.from_dict({"text": ["streamed"]}).to_iterable_dataset()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    source = HfDatasetConfig(dataset="org/corpus", subset="en", split="validation")
    assert [d.text for d in source.iter_documents()] == ["streamed"]
    assert calls == [
        (("org/corpus", "en"), {"split": "validation", "revision": None, "streaming": True})
    ]


def test_hf_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs exactly one of path .* or dataset"):
        validate(HfDatasetConfig, {"name": "hf_dataset"})
    with pytest.raises(SourceError, match="'/nowhere/ds' does not exist; point it at a dir"):
        HfDatasetConfig(path="/nowhere/ds").iter_documents()
    pytest.importorskip("datasets")
    (tmp_path / "junk").mkdir()
    with pytest.raises(SourceError, match="is not a dataset saved with save_to_disk"):
        HfDatasetConfig(path=str(tmp_path / "junk")).iter_documents()


def test_hf_without_datasets_installed_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(SourceError) as err:
        HfDatasetConfig(path=str(tmp_path)).iter_documents()
    assert str(err.value) == (
        "hf_dataset needs the Hugging Face datasets package; install it with `pip install datasets`"
    )


# ----------------------------------------------------------------------------- python stdlib
def stdlib_json_dir() -> Path:
    return Path(json.__file__).parent


def test_stdlib_per_file(tmp_path):
    docs, _ = read(PythonStdlibConfig(modules=["json", "textwrap"]))
    expected = sorted(f"json/{p.name}" for p in stdlib_json_dir().glob("*.py"))
    assert [d.id for d in docs] == [*expected, "textwrap.py"]
    init = docs[0]
    assert init.id == "json/__init__.py"
    assert init.text == (stdlib_json_dir() / "__init__.py").read_text()
    assert init.metadata == {"module": "json", "path": "json/__init__.py"}
    assert docs[1].metadata["module"] == "json.decoder"


@quiet_skips
def test_whole_stdlib_is_sorted_and_excludes_tests_and_site_packages():
    docs, stats = read(PythonStdlibConfig())
    ids = [d.id for d in docs]
    assert len(ids) > 100
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert "os.py" in ids and "json/__init__.py" in ids
    assert not any(i.startswith(("test/", "site-packages/")) or "/tests/" in i for i in ids)
    assert stats.documents == len(docs)
    assert Path(sysconfig.get_paths()["stdlib"]) == PythonStdlibConfig().source_root()


def test_stdlib_per_function_matches_ast_segments():
    docs, _ = read(PythonStdlibConfig(split="function", modules=["json", "textwrap"]))
    by_id = {d.id: d for d in docs}
    assert len(by_id) == len(docs) > 20
    source = (stdlib_json_dir() / "__init__.py").read_text()
    node = next(
        n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "dumps"
    )
    dumps = by_id["json/__init__.py::dumps"]
    assert dumps.text == ast.get_source_segment(source, node)
    assert dumps.metadata == {
        "module": "json",
        "path": "json/__init__.py",
        "name": "dumps",
        "kind": "function",
        "line_start": node.lineno,
        "line_end": node.end_lineno,
    }
    wrapper = by_id["textwrap.py::TextWrapper"]
    assert wrapper.metadata["kind"] == "class"
    assert wrapper.text.startswith("class TextWrapper:")
    assert [d.id for d in docs[:2]] == ["json/__init__.py::dump", "json/__init__.py::dumps"]


def test_function_split_of_a_custom_root(tmp_path):
    pkg = tmp_path / "pkg"
    for d in ("pkg", "pkg/tests", "pkg/__pycache__", "my-scripts"):
        (tmp_path / d).mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        "import functools\n\n"
        "@functools.cache\n@staticmethod\ndef f(x):\n    return 'é' + x  # tail\n\n"
        "X = 1\n\n"
        "def f(y): return y\n\n"
        "class C:\n    def m(self):\n        pass\n"
    )
    (pkg / "broken.py").write_text("def oops(:\n")
    (pkg / "tests" / "test_mod.py").write_text("def test_f():\n    pass\n")
    (pkg / "__pycache__" / "cached.py").write_text("def nope(): pass\n")
    (pkg / "my-script.py").write_text("def nope(): pass\n")
    (tmp_path / "my-scripts" / "tool.py").write_text("def nope(): pass\n")
    source = PythonStdlibConfig(root=str(tmp_path), split="function")
    with pytest.warns(SkippedDocumentsWarning, match="syntax_error=1 \\(e.g. pkg/broken.py\\)"):
        docs, stats = read(source)
    assert [(d.id, d.metadata["line_start"], d.metadata["line_end"]) for d in docs] == [
        ("pkg/mod.py::f", 3, 6),
        ("pkg/mod.py::f#2", 10, 10),
        ("pkg/mod.py::C", 12, 14),
    ]
    assert docs[0].text == "@functools.cache\n@staticmethod\ndef f(x):\n    return 'é' + x"
    assert docs[2].text == "class C:\n    def m(self):\n        pass"
    assert {d.metadata["module"] for d in docs} == {"pkg.mod"}
    assert stats.skipped == {"syntax_error": 1, "empty": 1}  # the empty pkg/__init__.py
    with_tests = PythonStdlibConfig(root=str(tmp_path), include_tests=True, modules=["pkg.tests"])
    assert [(d.id, d.metadata["module"]) for d in read(with_tests)[0]] == [
        ("pkg/tests/test_mod.py", "pkg.tests.test_mod")
    ]


@quiet_skips
def test_stdlib_sides_partition_the_files_by_the_seeded_split():
    def paths(**side) -> list[str]:
        config = PythonStdlibConfig(**{"modules": ["email", "json"], **side})
        return [d.id for d in read(config)[0]]

    every = paths()
    pretraining = paths(side="pretraining", heldout_fraction=0.4, heldout_seed=3)
    heldout = paths(side="heldout", heldout_fraction=0.4, heldout_seed=3)
    assert sorted(pretraining + heldout) == every and not set(pretraining) & set(heldout)
    assert heldout == [p for p in every if is_heldout(p, 0.4, 3)]
    assert 0 < len(heldout) < len(every)
    # A larger fraction only moves files to the held-out side.
    assert set(heldout) < set(paths(side="heldout", heldout_fraction=0.7, heldout_seed=3))
    # The split does not depend on which modules are read.
    alone = paths(side="heldout", heldout_fraction=0.4, heldout_seed=3, modules=["email"])
    assert alone == [p for p in heldout if p.startswith("email/")]


def test_match_and_exclude_tag_domains_by_path_pattern():
    both = {"modules": ["json", "test.test_json"], "include_tests": True}
    every = [d.id for d in read(PythonStdlibConfig(**both))[0]]
    tests = read(PythonStdlibConfig(**both, label="tests", match=["test/*", "*/tests/*"]))[0]
    library = read(PythonStdlibConfig(**both, label="library", exclude=["test/*", "*/tests/*"]))[0]
    assert [d.id for d in tests] == [i for i in every if i.startswith("test/")] != []
    assert sorted(d.id for d in tests + library) == every
    assert {d.source for d in tests} == {"tests"} and {d.source for d in library} == {"library"}
    # The limit counts selected documents; unselected ones are not skips.
    limited, stats = read(PythonStdlibConfig(**both, match=["test/*"], limit=2))
    assert [d.id for d in limited] == [d.id for d in tests[:2]] and not stats.skipped
    functions = PythonStdlibConfig(modules=["json"], split="function", match=["*::dump*"])
    assert [d.id for d in read(functions)[0]] == [
        "json/__init__.py::dump",
        "json/__init__.py::dumps",
    ]


def test_stdlib_errors_and_limit(tmp_path):
    with pytest.raises(SourceError, match="no module under .* matches modules=\\['jsn'\\]"):
        PythonStdlibConfig(modules=["jsn"]).iter_documents()
    with pytest.raises(SourceError, match="is not a directory; point root at a directory"):
        PythonStdlibConfig(root=str(tmp_path / "nope")).iter_documents()
    docs, stats = read(PythonStdlibConfig(split="function", modules=["json"], limit=3))
    assert [d.id for d in docs] == [
        "json/__init__.py::dump",
        "json/__init__.py::dumps",
        "json/__init__.py::detect_encoding",
    ]
    assert stats.documents == 3


# ----------------------------------------------------------------------------- paths, limits
def test_missing_path_is_a_one_line_error_before_iteration(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(SourceError) as err:
        JsonlConfig(path=str(missing)).iter_documents()  # no next(): fails at once
    assert str(err.value) == (
        f"jsonl.path: {str(missing)!r} does not exist; point path at an existing file, "
        "directory or glob pattern"
    )
    with pytest.raises(SourceError, match="no file matches .*; check the pattern"):
        TextFilesConfig(path=str(tmp_path / "*.txt")).iter_documents()
    with pytest.raises(SourceError, match="holds no \\*.parquet file"):
        ParquetConfig(path=str(tmp_path)).iter_documents()


def test_limit_stops_after_n_documents(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": ""}, *({"text": f"t{i}"} for i in range(5))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs, stats = read(JsonlConfig(path=str(tmp_path), limit=2))
    assert [d.text for d in docs] == ["t0", "t1"]
    assert (stats.documents, dict(stats.skipped)) == (2, {"empty": 1})
    assert len(caught) == 1  # the skip is still reported when the limit ends the pass
    with pytest.raises(ConfigError, match="limit: got 0; expected greater than 0"):
        validate(JsonlConfig, {"name": "jsonl", "path": "x", "limit": 0})


# ----------------------------------------------------------------------------- chain, registry
def test_chain_tags_documents_and_keeps_stats(tmp_path):
    (tmp_path / "a.txt").write_text("from text")
    write_jsonl(tmp_path / "b.jsonl", [{"text": "from jsonl"}, {"x": 1}])
    sources = [
        JsonlConfig(path=str(tmp_path / "b.jsonl"), label="web"),
        TextFilesConfig(path=str(tmp_path / "a.txt"), label="books"),
        PythonStdlibConfig(modules=["textwrap"], split="file"),
    ]
    stats: dict[str, SourceStats] = {}
    with pytest.warns(SkippedDocumentsWarning, match="source 'web' skipped 1 item"):
        docs = list(iter_documents(sources, stats))
    assert [(d.source, d.id) for d in docs] == [
        ("web", "b.jsonl:1"),
        ("books", "a.txt"),
        ("python_stdlib", "textwrap.py"),
    ]
    assert {k: (s.documents, dict(s.skipped)) for k, s in stats.items()} == {
        "web": (1, {"missing_field": 1}),
        "books": (1, {}),
        "python_stdlib": (1, {}),
    }
    with pytest.raises(SourceError, match="'web' used more than once; give each source a"):
        iter_documents([sources[0], TextFilesConfig(path="x", label="web")])
    with pytest.raises(SourceError, match="does not exist"):  # checked before any document
        iter_documents([sources[1], TextFilesConfig(path=str(tmp_path / "none.txt"))])


class Corpus(BaseConfig):
    sources: list[SOURCES.type(SourceConfig, default="jsonl")]


def test_sources_are_registered_and_parse_from_config(tmp_path):
    assert SOURCES.names() == [
        "curated",
        "hf_dataset",
        "jsonl",
        "parquet",
        "python_docs",
        "python_stdlib",
        "text_files",
        "world_text",
    ]
    data = {
        "sources": [
            {"path": "a.jsonl.gz", "text_field": "body"},  # no name: the default kind
            {"name": "python_stdlib", "split": "function", "modules": ["json"]},
        ]
    }
    corpus = validate(Corpus, data)
    assert isinstance(corpus.sources[0], JsonlConfig)
    assert corpus.sources[1] == PythonStdlibConfig(split="function", modules=["json"])
    assert validate(Corpus, corpus.to_dict()) == corpus
    assert corpus.to_dict()["sources"][0]["text_field"] == "body"
    with pytest.raises(ConfigError, match="sources.0.txt_field: unknown field"):
        validate(Corpus, {"sources": [{"name": "jsonl", "path": "a", "txt_field": "x"}]})
