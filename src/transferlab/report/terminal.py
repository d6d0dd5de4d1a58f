"""The terminal summary of an experiment: per task, the metric it is shown by (the primary one if
the task declares it, else its headline) for each variant and the paired comparisons, as rich
tables, with its per-group means (a few groups) and its notes; each variant's final validation
loss per data domain (runs of several domains); per measure of the training runs its estimates
and comparisons over seeds; then the verdict lines, one per expectation. Every comparison shows
its MDE80 (minimum detectable effect at 80% power; n/a in a summary written before it). Data strings go in as ``Text`` so that
rich never reads a variant name like ``[bold]x`` as markup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from transferlab.experiment.invocations import last_invocation
from transferlab.report import formatting as fmt
from transferlab.report.inputs import (
    load_summary,
    measure_note,
    measure_title,
    metric_label,
    read_runs,
    shown_metric,
    verdicts,
    weightings_stated,
)
from transferlab.train.callbacks.validation import DOMAIN_PREFIX

_VERDICT_STYLE = {
    "reproduced": "bold green",
    "not reproduced": "bold red",
    "better": "green",
    "worse": "red",
}


MAX_GROUPS_SHOWN = 12  # groups of a task the terminal summary lists; report.html shows all


def print_summary(exp_dir: Path, console: Console) -> None:
    """Print, per task, the estimates of its shown metric and their comparisons, then per
    measure its estimates and comparisons; then the verdicts."""
    summary = load_summary(exp_dir)
    primary = str(summary.get("primary_metric") or "correct")
    level = fmt.level(summary.get("level"))
    name = summary.get("experiment", Path(exp_dir).name)
    console.print(Text(f"experiment: {name}", style="bold"))
    rows = summary.get("estimates", []) + summary.get("comparisons", [])
    for task in dict.fromkeys(str(row["task"]) for row in rows):
        metric = shown_metric(summary, task, primary)
        console.print(estimates_table(summary, task, metric, level))
        comparisons = comparisons_table(summary, task, metric, level)
        if comparisons.row_count:
            console.print(comparisons)
        for extra in (groups_table(summary, task, level), notes_table(summary, task)):
            if extra is not None:
                console.print(extra)
    if summary.get("curves"):
        console.print(curves_line(summary))
    runs = read_runs(exp_dir)
    domains = domain_validation_table(runs)
    if domains is not None:
        console.print(domains)
        console.print(Text(weighting_line(runs)))
    for table in decisions_tables(summary):
        console.print(table)
    for measure in summary.get("measures") or []:
        console.print(measure_estimates_table(measure, level))
        comparisons = measure_comparisons_table(measure, level)
        if comparisons.row_count:
            console.print(comparisons)
    invocation = last_invocation(exp_dir)
    if invocation is not None:
        console.print(Text(f"wall time: {fmt.wall_time(invocation)}"))
    for line in verdict_lines(summary):
        console.print(line)


def print_stability(stability: dict[str, Any], console: Console) -> None:
    """Per expectation (``stability.json``): the original verdict, each fresh seed set's, and
    how often the verdict repeated, with its exact interval."""
    from transferlab.report.scoreboard import stability_fields, stability_text

    table = Table(title=Text(f"verdict stability over {stability['k']} fresh seed sets"))
    for column in ("expectation", "seeds", "verdict", "difference [interval]"):
        table.add_column(column)
    for exp in stability["expectations"]:
        sets = [{"seeds": stability["seeds"], **exp["original"]}, *exp["reseeds"]]
        for i, found in enumerate(sets):
            effect = fmt.interval(
                found.get("diff"), found.get("low"), found.get("high"), signed=True
            )
            table.add_row(Text(exp["subject"] if i == 0 else ""), Text(str(found["seeds"])),
                          Text(found["status"]), Text(effect))  # fmt: skip
        repeats = stability_text(stability_fields(exp["repeats"]))
        table.add_row(Text(""), Text("repeats"), Text(repeats), Text(""))
    console.print(table)


def print_scoreboard(out_dir: Path, console: Console) -> None:
    """The scoreboard's rows (``scoreboard.json``), the columns that fit a terminal."""
    import json

    from transferlab.report.scoreboard import cells

    table = Table(title=Text("scoreboard"))
    shown = ("recipe", "expectation", "verdict", "effect", "mde80", "wall_time", "stability")
    for column in shown:
        table.add_column(column)
    for row in json.loads((Path(out_dir) / "scoreboard.json").read_text()):
        text = cells(row)
        table.add_row(*(Text(text[column]) for column in shown))
    console.print(table)


def verdict_lines(summary: dict[str, Any]) -> list[Text]:
    """``verdict: TEXT``, or ``verdict 1/2: TEXT`` per expectation when there are several."""
    found = verdicts(summary) or [{}]
    lines = []
    for i, verdict in enumerate(found, start=1):
        status = str(verdict.get("status", "none"))
        head = "verdict: " if len(found) == 1 else f"verdict {i}/{len(found)}: "
        line = Text(head, style="bold")
        line.append(str(verdict.get("text", status)), style=_VERDICT_STYLE.get(status, "bold"))
        lines.append(line)
    return lines


def measure_estimates_table(measure: dict[str, Any], level: str) -> Table:
    table = Table(title=Text(measure_title(measure)), title_justify="left")
    _columns(table, ["variant"], [f"mean [{level} interval]", "seeds", "note"])
    for row in measure["estimates"]:
        table.add_row(
            Text(str(row["variant"])),
            fmt.quantity_interval(row["mean"], row["low"], row["high"]),
            str(row["n_seeds"]),
            Text(measure_note(row)),
        )
    return table


def measure_comparisons_table(measure: dict[str, Any], level: str) -> Table:
    title = Text(f"{measure['measure']}: paired differences by seed")
    table = Table(title=title, title_justify="left")
    rows = measure["comparisons"]
    if rows and rows[0].get("level") not in (None, measure.get("level")):
        level = fmt.level(rows[0]["level"])  # compare.correction: the Bonferroni level
    difference = f"difference [{level} interval]"
    values = [difference, "p", "p (Holm)", "MDE80", "verdict", "seeds", "note"]
    _columns(table, ["comparison"], values)
    for row in measure["comparisons"]:
        verdict = str(row["verdict"])
        table.add_row(
            Text(f"{row['variant']} vs {row['reference']}"),
            fmt.quantity_interval(row["diff"], row["low"], row["high"], signed=True),
            fmt.p_value(row.get("p_value")),
            fmt.p_value(row.get("p_holm")),
            fmt.significant(row.get("mde80")),
            Text(verdict, style=_VERDICT_STYLE.get(verdict, "")),
            str(row["n_seeds"]),
            Text(measure_note(row)),
        )
    return table


def curves_line(summary: dict[str, Any]) -> Text:
    """One line saying which transfer curves the report plots."""
    rows = summary["curves"]
    tasks = dict.fromkeys(f"{row['task']} ({row['metric']})" for row in rows)
    steps = sorted({row["step"] for row in rows})
    return Text(
        f"transfer curves: {', '.join(tasks)} at {len(steps)} steps ({steps[0]} to {steps[-1]}) "
        "per variant; plotted with intervals in report.html"
    )


FINAL_DOMAIN_LOSS = "final_" + DOMAIN_PREFIX  # runs.parquet's final_val_loss/<domain>


def domain_validation_table(runs: list[dict[str, Any]]) -> Table | None:
    """Each variant's final validation loss per data domain (a row per variant, and per stage
    when there are several), the mean over the seeds that have the domain with their n; None
    unless the runs have two domains or more."""
    domains = list(
        dict.fromkeys(
            key.removeprefix(FINAL_DOMAIN_LOSS)
            for run in runs
            for key, value in run.items()
            if key.startswith(FINAL_DOMAIN_LOSS) and value is not None
        )
    )
    if len(domains) < 2:
        return None
    staged = len({run.get("stage") for run in runs}) > 1
    title = Text("final val loss per domain")
    table = Table(title=title, title_justify="left")
    _columns(table, ["variant", *(["stage"] if staged else [])], domains)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run in runs:
        name = (str(run["variant"]), *([str(run.get("stage"))] if staged else []))
        groups.setdefault(name, []).append(run)
    for name, members in groups.items():
        cells = (_seed_mean([r.get(FINAL_DOMAIN_LOSS + d) for r in members]) for d in domains)
        table.add_row(*map(Text, name), *cells)
    return table


def weighting_line(runs: list[dict[str, Any]]) -> str:
    """What the per-domain table shows, and how ``val_loss`` weighs its domains."""
    return (
        "per domain: the mean over the seeds that have it (n seeds); val_loss weighs the "
        f"domains by trainer.validation_weighting = {weightings_stated(runs)}"
    )


def _seed_mean(values: list[Any]) -> str:
    """``2.345 (n=2)``: the mean of the seeds' values that are numbers; ``n/a`` for none."""
    found = [v for v in values if fmt.is_number(v)]
    return f"{fmt.number(sum(found) / len(found))} (n={len(found)})" if found else "n/a"


def decisions_tables(summary: dict[str, Any]) -> list[Table]:
    """Per task of a spec with ``sizes``: per metric, the decision accuracy of each smaller
    size against the largest, the mean-over-sizes difference from the target metric, and the
    signal-to-noise ratio at each size; none without sizes."""
    decisions = summary.get("decisions")
    if not decisions:
        return []
    level, sizes = fmt.level(decisions.get("level")), decisions["sizes"]
    out = []
    for task in dict.fromkeys(str(r["task"]) for r in decisions["accuracy"]):
        rows = [r for r in decisions["accuracy"] if r["task"] == task]
        first, smaller = rows[0], list(dict.fromkeys(r["size"] for r in rows))
        title = Text(
            f"{task}: decision accuracy against the order at {decisions['largest']} by "
            f"{first['target_metric']} [{level} seed-bootstrap interval]; chance "
            f"{decisions['chance']:g}; n = {first['n_pairs']} pairs x {first['n_seeds']} seeds"
        )
        table = Table(title=title, title_justify="left")
        minus = f"minus {first['target_metric']} (mean)"
        _columns(table, ["metric"], [*smaller, minus, *(f"SNR {s}" for s in sizes)])
        for metric in dict.fromkeys(r["metric"] for r in rows):
            cells = {r["size"]: r for r in rows if r["metric"] == metric}
            found = [cells[s] for s in smaller]
            diff = _decision_row(decisions["differences"], task, metric, first["target_metric"])
            snr = {
                r["size"]: r["snr"]
                for r in decisions["snr"]
                if (r["task"], r["metric"]) == (task, metric)
            }
            table.add_row(
                Text(metric),
                *(fmt.interval(c["accuracy"], c["low"], c["high"]) for c in found),
                fmt.interval(diff["diff"], diff["low"], diff["high"], signed=True) if diff else "-",
                *(fmt.number(snr.get(s), 2) for s in sizes),
            )
        out.append(table)
    return out


def _decision_row(
    rows: list[dict[str, Any]], task: str, metric: str, than: str
) -> dict[str, Any] | None:
    """The mean-over-sizes difference of ``metric`` minus ``than`` (None for ``than`` itself)."""
    wanted = (task, metric, than, None)
    return next((r for r in rows if (r["task"], r["metric"], r["than"], r["size"]) == wanted), None)


def estimates_table(summary: dict[str, Any], task: str, metric: str, level: str) -> Table:
    label = metric_label(summary, task, metric)
    title = Text(f"{task}: {label}, mean [{level} interval], n = seeds x examples")
    table = Table(title=title, title_justify="left")
    _columns(table, ["variant"], ["mean [interval]", "n"])
    for row in _rows(summary, "estimates", task, metric):
        table.add_row(
            Text(fmt.at_size(str(row["variant"]), row)),
            fmt.interval(row["mean"], row["low"], row["high"]),
            _n(row),
        )
    return table


def groups_table(summary: dict[str, Any], task: str, level: str) -> Table | None:
    """The task's per-group means by variant, for a task of 2 to ``MAX_GROUPS_SHOWN`` groups
    (more, such as a code task's modules, are left to report.html); else None."""
    rows = [row for row in summary.get("groups", []) if row.get("task") == task]
    groups = list(dict.fromkeys(str(row["group"]) for row in rows))
    if not 2 <= len(groups) <= MAX_GROUPS_SHOWN:
        return None
    # Columns: the variants, or in a spec with sizes each variant at each size.
    variants = list(dict.fromkeys(fmt.at_size(str(row["variant"]), row) for row in rows))
    label = metric_label(summary, task, str(rows[0]["metric"]))
    title = Text(f"{task}: {label} per group, mean [{level} interval]")
    table = Table(title=title, title_justify="left")
    _columns(table, ["group"], variants)
    cells = {(str(row["group"]), fmt.at_size(str(row["variant"]), row)): row for row in rows}
    for group in groups:
        found = [cells.get((group, variant)) for variant in variants]
        table.add_row(
            Text(group),
            *(fmt.interval(c["mean"], c["low"], c["high"]) if c else "n/a" for c in found),
        )
    return table


def notes_table(summary: dict[str, Any], task: str) -> Table | None:
    """What the task noted about its evaluations (per note and group, by variant; a range when
    a variant's runs differ), with what each note counts below; None when it noted nothing."""
    rows = [row for row in summary.get("notes", []) if row.get("task") == task]
    if not rows:
        return None
    variants = list(dict.fromkeys(str(row["variant"]) for row in rows))
    described = {str(row["name"]): str(row["description"]) for row in rows}
    caption = "; ".join(f"{name}: {text}" for name, text in described.items())
    table = Table(title=Text(f"{task}: notes"), title_justify="left", caption=Text(caption))
    _columns(table, ["note", "group"], variants)
    cells = {(str(r["name"]), str(r["group"]), str(r["variant"])): r for r in rows}
    for name, group in dict.fromkeys((str(r["name"]), str(r["group"])) for r in rows):
        values = (fmt.note_value(cells.get((name, group, variant))) for variant in variants)
        table.add_row(Text(name), Text(group), *values)
    return table


def comparisons_table(summary: dict[str, Any], task: str, metric: str, level: str) -> Table:
    label = metric_label(summary, task, metric)
    rows = _rows(summary, "comparisons", task, metric)
    # With compare.correction the family's intervals are at the Bonferroni level, not level.
    corrected = any("p_holm" in row for row in rows)
    if corrected:
        level = f"{fmt.level(rows[0]['level'])} (Bonferroni over {len(rows)})"
    title = Text(f"{task}: paired differences in {label} [{level} interval]")
    table = Table(title=title, title_justify="left")
    p_columns = ["p", "p (Holm)"] if corrected else ["p"]
    _columns(table, ["comparison"], ["difference [interval]", *p_columns, "MDE80", "verdict", "n"])
    for row in rows:
        verdict = str(row["verdict"])
        p_values = [fmt.p_value(row.get("p_value"))]
        if corrected:
            p_values.append(fmt.p_value(row.get("p_holm")))
        table.add_row(
            Text(fmt.at_size(f"{row['variant']} vs {row['reference']}", row)),
            fmt.interval(row["diff"], row["low"], row["high"], signed=True),
            *p_values,
            fmt.number(row.get("mde80")),
            Text(verdict, style=_VERDICT_STYLE.get(verdict, "")),
            _n(row),
        )
    return table


def _rows(summary: dict[str, Any], key: str, task: str, metric: str) -> list[dict[str, Any]]:
    return [r for r in summary.get(key, []) if r.get("task") == task and r.get("metric") == metric]


def _columns(table: Table, names: list[str], values: list[str]) -> None:
    """Name columns fold when the terminal is narrow; value columns (numbers, verdicts) never
    wrap, so an interval always reads on one line. Headers go in as ``Text``: as a plain string
    rich would read "[interval]" as a markup tag and drop it."""
    for header in names:
        table.add_column(Text(header), overflow="fold")
    for header in values:
        table.add_column(Text(header), justify="right", no_wrap=True)


def _n(row: dict[str, Any]) -> str:
    return f"{row.get('n_seeds')} x {row.get('n_examples')}"
