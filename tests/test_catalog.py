"""Discoverability: options read from config classes, `transferlab components` / `explain`, and
docs/reference.md generated from the registries (and kept current by a test)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import Field
from typer.testing import CliRunner

from transferlab.catalog import SECTION, Entry, catalog, find, reference_markdown, sections
from transferlab.cli import app
from transferlab.config import BaseConfig, ComponentConfig
from transferlab.config.options import Option, options, summary
from transferlab.config.registry import REGISTRIES, SOURCES, Registry

runner = CliRunner()
REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


class Inner(BaseConfig):
    """A nested section."""

    depth: int = 1


class Sample(BaseConfig):
    """What the options are read from. ``ratio``: the share kept (of all documents); the rest
    is dropped."""

    size: int = Field(default=3, gt=0, description="how big")
    # how many times,
    # over two comment lines
    count: int | None = Field(default=None, ge=0)  # None: unlimited
    ratio: Annotated[float, Field(ge=0, le=1)] | None = 0.5
    pairs: list[tuple[int, Annotated[float, Field(gt=0)]]] = [(1, 0.5)]
    kind: Literal["a", "b"] = "a"
    inner: Inner = Field(default_factory=Inner)
    sources: list[SOURCES.type(ComponentConfig)] = []
    path: str


def test_options_read_type_default_constraint_and_description_from_the_class():
    fields = {o.name: o for o in options(Sample)}
    assert fields["size"] == Option("size", "int", "3", "> 0", "how big")
    assert fields["count"] == Option(
        "count",
        "int | null",
        "null",
        ">= 0",
        "how many times, over two comment lines None: unlimited",
    )
    assert fields["ratio"] == Option(
        "ratio", "float | null", "0.5", ">= 0, <= 1", "the share kept (of all documents)"
    )
    assert fields["pairs"].type == "list[tuple[int, float (> 0)]]"
    assert fields["pairs"].default == "[[1, 0.5]]"
    assert fields["kind"].type == '"a" | "b"'
    assert (fields["inner"].type, fields["inner"].default) == ("mapping", "{}")
    assert fields["sources"].type == "list[source]"
    assert (fields["path"].default, fields["path"].description) == ("required", "")
    assert summary(Sample) == "What the options are read from."


def test_a_new_registry_and_component_appear_with_their_options():
    widgets = Registry("widget")
    try:

        @widgets.register("spinner")
        class SpinnerConfig(ComponentConfig):
            """Spins documents round."""

            name: Literal["spinner"] = "spinner"
            turns: int = Field(default=2, gt=0, description="full turns per document")

        listed = runner.invoke(app, ["components"], terminal_width=200)
        assert "widgets\n  spinner  Spins documents round.\n" in listed.output
        explained = runner.invoke(app, ["explain", "spinner"])
        assert explained.exit_code == 0, explained.output
        assert explained.output == (
            "widget spinner: Spins documents round.\n\n"
            "turns: int = 2 (> 0)\n    full turns per document\n"
        )
    finally:
        REGISTRIES.remove(widgets)


def test_components_lists_each_registry_with_one_line_descriptions():
    result = runner.invoke(app, ["components"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for registry in REGISTRIES:
        assert f"\n{registry.kind}s\n" in f"\n{result.output}", registry.kind
        for name in registry.names():
            assert f"\n  {name} " in result.output, name
    # Names are padded to the longest of their kind (other test modules register more).
    for name, text in (
        ("jsonl", "JSON Lines files, plain or gzip-compressed, read one line at a time."),
        ("gopher_quality", "Gopher's quality rules (Rae et al. 2021, appendix A1); None disables"),
        ("cosine", "Linear warmup, then cosine decay from 1 to ``min_lr_ratio`` at the last step."),
        ("tiny", "d_model=128, n_layers=5, n_heads=4"),
        ("clm", "Causal language modelling: predict every next token under a causal mask."),
    ):
        assert re.search(rf"^  {name} +{re.escape(text)}", result.output, re.M), name


def test_explain_prints_each_option_with_type_default_constraint_and_description():
    jsonl = runner.invoke(app, ["explain", "jsonl"]).output
    assert jsonl.startswith(
        "source jsonl: JSON Lines files, plain or gzip-compressed, read one line at a time.\n"
        "written in: run.data.sources, curation_job.sources, "
    )
    assert "\nmax_record_bytes: int = 67108864 (> 0)\n" in jsonl
    assert (
        "\npath: str, required\n    a .jsonl or .jsonl.gz file, a directory (every such file "
        "below it) or a glob.\n" in jsonl
    )
    gopher = runner.invoke(app, ["explain", "filter/gopher_quality"]).output
    assert "\nmax_bullet_lines_ratio: float | null = 0.9 (>= 0, <= 1)\n" in gopher
    trainer = runner.invoke(app, ["explain", "trainer"]).output
    assert trainer.startswith("section run.trainer: ")
    assert '\nprecision: "auto" | "fp32" | "bf16" = "auto"\n    auto: bf16 autocast' in trainer
    assert "\ncallbacks: list[callback] = []\n" in trainer


def test_explain_shows_nested_sections_and_what_a_task_declares():
    task = runner.invoke(app, ["explain", "qa_score"]).output
    assert "\nmetrics: correct (higher is better): " in task
    assert "\nreads: causal, bidirectional, prefix models\n" in task
    curated = runner.invoke(app, ["explain", "curated"]).output
    assert "\ncurated.curation.dedup.minhash: " in curated


def test_ambiguous_and_unknown_names_fail_in_one_line_naming_the_candidates():
    ambiguous = runner.invoke(app, ["explain", "init"])
    assert ambiguous.exit_code == 2
    assert (
        "'init' is ambiguous: config/run.init, config/experiment.stages.init; name one as "
        "KIND/NAME" in " ".join(ambiguous.output.split())
    )
    chosen = runner.invoke(app, ["explain", "config/run.init"])
    assert chosen.exit_code == 0 and chosen.output.startswith("section run.init: ")
    unknown = runner.invoke(app, ["explain", "jsnol"])
    assert unknown.exit_code == 2
    assert "nothing named 'jsnol'; did you mean jsonl? " in " ".join(unknown.output.split())
    with pytest.raises(ValueError, match="did you mean source/parquet"):
        find("source/parqet", catalog())
    assert runner.invoke(app, ["explain"]).exit_code == 2


def test_every_section_and_component_is_in_the_catalog_once():
    entries = catalog()
    keys = [entry.key for entry in entries]
    assert len(keys) == len(set(keys))
    for expected in ("config/experiment.expect", "config/run.data.mixture", "filter/c4_quality"):
        assert expected in keys


def shipped(entries: list[Entry]) -> list[Entry]:
    """The entries transferlab ships, without the components test modules register."""
    return [
        e
        for e in entries
        if getattr(e.target, "__module__", "transferlab").startswith("transferlab")
    ]


def test_reference_doc_is_current():
    expected = reference_markdown(shipped(catalog()))
    assert REFERENCE.read_text() == expected, (
        "docs/reference.md is out of date: regenerate it with "
        "`transferlab explain --all --markdown > docs/reference.md`"
    )


def undocumented(entries: list[Entry]) -> list[str]:
    """``KIND/NAME: [section.]option`` of every option with an empty description, nested
    sections of a component included (a config section's are entries of their own)."""
    blank = []
    for entry in entries:
        if not isinstance(entry.target, type):
            continue  # a model preset: values, no options
        own = [(entry.name, entry.target)]
        for path, model in own if entry.kind == SECTION else sections(entry.name, entry.target):
            opts = entry.options() if path == entry.name else options(model)
            inner = "" if path == entry.name else f"{path.removeprefix(entry.name + '.')}."
            blank += [f"{entry.key}: {inner}{o.name}" for o in opts if not o.description]
    return blank


def test_undocumented_finds_a_blank_option_also_in_a_nested_section():
    class Blank(BaseConfig):
        """Nothing said about its option."""

        depth: int = 1

    class Holder(ComponentConfig):
        """Holds a section."""

        name: Literal["holder"] = "holder"
        size: int = 1  # described
        nested: Blank = Field(default_factory=Blank)

    assert undocumented([Entry("widget", "holder", Holder)]) == [
        "widget/holder: nested",
        "widget/holder: nested.depth",
    ]


def test_every_shipped_option_has_a_description():
    blank = undocumented(shipped(catalog()))
    assert blank == [], (
        f"{len(blank)} options have no description: {blank}; write one as the comment beside "
        "or above the field (see config.options)"
    )
