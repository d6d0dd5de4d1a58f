"""Terminal views (rich) of a curation report and of corpus statistics.

Curation counts whitespace words (``count_tokens``); corpus statistics count words too, or a
tokenizer's tokens when given one (``CorpusStats.unit``): each view names the unit it shows.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from transferlab.config.schemas import DataWarningsConfig
from transferlab.curation.corpus_stats import CorpusStats, bucket_label
from transferlab.curation.dedup import DedupConfig
from transferlab.curation.report import CurationReport, StageStats

PREVIEW_CHARS = 160
TOP_REASONS = 3


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def print_report(report: CurationReport, console: Console, samples: bool = True) -> None:
    """What deduplication was asked for (defaults said so); per stage: documents in, removed
    and rewritten, words removed, the reasons that removed the most; what was kept (a warning
    when it is almost nothing); then samples of removed and rewritten documents."""
    if "dedup" in report.config:  # a hand-made report may hold no config
        console.print(dedup_summary(report.config["dedup"]), highlight=False)
    table = Table(title="Curation: what each stage removed")
    for column in ("stage", "kind", "docs in", "removed", "rewritten", "words removed"):
        table.add_column(column, justify="left" if column in ("stage", "kind") else "right")
    table.add_column("top reasons (most documents first)")
    for stage in report.stages:
        table.add_row(*_stage_cells(stage))
    console.print(table)
    kept, given = report.output, report.input
    console.print(
        f"kept {kept.documents:,} of {given.documents:,} documents "
        f"({_pct(kept.documents, given.documents)}), {kept.tokens:,} of {given.tokens:,} words "
        f"({_pct(kept.tokens, given.tokens)})"
    )
    low = DataWarningsConfig().min_kept_fraction
    if given.documents and kept.documents / given.documents < low:
        console.print(
            f"warning: curation kept less than {low:.0%} of the documents (the default "
            "data.warnings.min_kept_fraction of a run); the reasons above say what removed them",
            style="bold yellow",
            highlight=False,
        )
    if samples:
        _print_samples(report, console)


def _stage_cells(stage: StageStats) -> list[str]:
    reasons = ", ".join(f"{r} ({n:,})" for r, n in stage.top_reasons(TOP_REASONS))
    return [
        stage.name,
        stage.kind,
        f"{stage.docs_in:,}",
        f"{stage.docs_removed:,} ({_pct(stage.docs_removed, stage.docs_in)})",
        f"{stage.docs_modified:,} ({_pct(stage.docs_modified, stage.docs_out)})",
        f"{stage.tokens_removed:,} ({_pct(stage.tokens_removed, stage.tokens_in)})",
        reasons or "-",
    ]


def dedup_summary(dedup: dict[str, Any]) -> str:
    """One line on the deduplication a curation ran, saying which parts are defaults (they run
    unless turned off) and how to turn them off."""
    default = DedupConfig().to_dict()
    exact = "exact" if dedup["exact"] else "no exact"
    if dedup["exact"] == default["exact"]:
        exact += " (default; dedup.exact: false turns it off)"
    minhash = dedup["minhash"]
    if minhash is None:
        return f"dedup: {exact}, no MinHash"
    near = f"MinHash near-duplicates at similarity >= {minhash['threshold']:g}"
    if minhash == default["minhash"]:
        near += " (default; dedup.minhash: null turns it off)"
    return f"dedup: {exact}, then {near}"


def _print_samples(report: CurationReport, console: Console) -> None:
    for stage in report.stages:
        if stage.samples:
            console.print(
                f"[bold]{stage.name}[/bold]: {len(stage.samples)} sample(s) of removed documents"
            )
        for sample in stage.samples:
            extra = f" duplicate of {sample.duplicate_of}" if sample.duplicate_of else ""
            if sample.score is not None and not sample.duplicate_of:
                extra = f" score {sample.score:.4g}"
            console.print(f"  {sample.source}/{sample.id} [{sample.reason}]{extra}", markup=False)
            console.print(f"    {_preview(sample.text)}", markup=False, style="dim")
        if stage.modified_samples:
            console.print(
                f"[bold]{stage.name}[/bold]: {len(stage.modified_samples)} sample(s) of kept "
                "documents it rewrote"
            )
        for change in stage.modified_samples:
            words = f"{change.tokens_before:,} -> {change.tokens_after:,} words"
            console.print(f"  {change.source}/{change.id} [{words}]", markup=False)
            console.print(f"    before: {_preview(change.before)}", markup=False, style="dim")
            console.print(f"    after:  {_preview(change.after)}", markup=False, style="dim")


def _preview(text: str) -> str:
    return " ".join(text[:PREVIEW_CHARS].split())


def print_stats(stats: CorpusStats, console: Console) -> None:
    """Documents, words or tokens (``stats.unit``) and duplicate rates per domain, then the
    length histogram of the corpus."""
    unit = stats.unit
    table = Table(title=f"Corpus: {unit} per domain")
    columns = ["domain", "docs", unit, "share", f"mean {unit}", "exact dup"]
    if stats.near_duplicates:
        columns.append("near dup")
    for column in columns:
        table.add_column(column, justify="left" if column == "domain" else "right")
    total = stats.total
    rows = [*stats.domains.items(), ("total", total)]
    for index, (name, domain) in enumerate(rows):
        if index == len(rows) - 1:
            table.add_section()
        cells = [
            name,
            f"{domain.documents:,}",
            f"{domain.tokens:,}",
            _pct(domain.tokens, total.tokens),
            f"{domain.mean_tokens:,.1f}",
            f"{100 * domain.exact_duplicate_rate:.1f}%",
        ]
        if stats.near_duplicates:
            cells.append(f"{100 * domain.near_duplicate_rate:.1f}%")
        table.add_row(*cells)
    console.print(table)
    histogram = Table(title=f"Document length ({unit})")
    for column in (unit, "docs", "share", ""):
        histogram.add_column(column, justify="left" if column in (unit, "") else "right")
    peak = max(total.length_histogram.values(), default=1)
    for bucket, count in total.length_histogram.items():
        bar = "█" * max(1, round(30 * count / peak))
        histogram.add_row(bucket_label(bucket), f"{count:,}", _pct(count, total.documents), bar)
    console.print(histogram)
