"""Terminal views (rich) of a curation report and of corpus statistics."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from transferlab.curation.corpus_stats import CorpusStats, bucket_label
from transferlab.curation.report import CurationReport

PREVIEW_CHARS = 160


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def print_report(report: CurationReport, console: Console, samples: bool = True) -> None:
    """Per stage: documents in, removed, tokens removed, top reasons; then removed samples."""
    table = Table(title="Curation: what each stage removed")
    for column in ("stage", "kind", "docs in", "removed", "tokens removed", "top reasons"):
        table.add_column(
            column, justify="left" if column in ("stage", "kind", "top reasons") else "right"
        )
    for stage in report.stages:
        reasons = ", ".join(f"{r} ({n})" for r, n in list(stage.reasons.items())[:3])
        table.add_row(
            stage.name,
            stage.kind,
            f"{stage.docs_in:,}",
            f"{stage.docs_removed:,} ({_pct(stage.docs_removed, stage.docs_in)})",
            f"{stage.tokens_removed:,} ({_pct(stage.tokens_removed, stage.tokens_in)})",
            reasons or "-",
        )
    console.print(table)
    kept, given = report.output, report.input
    console.print(
        f"kept {kept.documents:,} of {given.documents:,} documents "
        f"({_pct(kept.documents, given.documents)}), {kept.tokens:,} of {given.tokens:,} tokens "
        f"({_pct(kept.tokens, given.tokens)})"
    )
    if samples:
        _print_samples(report, console)


def _print_samples(report: CurationReport, console: Console) -> None:
    for stage in report.stages:
        if not stage.samples:
            continue
        console.print(
            f"[bold]{stage.name}[/bold]: {len(stage.samples)} sample(s) of removed documents"
        )
        for sample in stage.samples:
            extra = f" duplicate of {sample.duplicate_of}" if sample.duplicate_of else ""
            if sample.score is not None and not sample.duplicate_of:
                extra = f" score {sample.score:.4g}"
            preview = " ".join(sample.text[:PREVIEW_CHARS].split())
            console.print(f"  {sample.source}/{sample.id} [{sample.reason}]{extra}", markup=False)
            console.print(f"    {preview}", markup=False, style="dim")


def print_stats(stats: CorpusStats, console: Console) -> None:
    """Tokens and duplicate rates per domain, then the length histogram of the corpus."""
    table = Table(title="Corpus: tokens per domain")
    columns = ["domain", "docs", "tokens", "share", "mean tokens", "exact dup"]
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
    histogram = Table(title="Document length (tokens)")
    for column in ("tokens", "docs", "share", ""):
        histogram.add_column(column, justify="left" if column in ("tokens", "") else "right")
    peak = max(total.length_histogram.values(), default=1)
    for bucket, count in total.length_histogram.items():
        bar = "█" * max(1, round(30 * count / peak))
        histogram.add_row(bucket_label(bucket), f"{count:,}", _pct(count, total.documents), bar)
    console.print(histogram)
