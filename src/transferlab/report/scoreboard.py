"""The scoreboard: one row per expectation of every experiment folder given (every recipe after
``transferlab recipes run --all``), in ``OUT/index.html`` (self-contained, no scripts),
``scoreboard.md``, ``scoreboard.csv`` and ``scoreboard.json``.

A row holds the claim, the paper, the expectation, the verdict with its effect and interval, the
n, the MDE80, the wall time of the folder's last invocation with how many of its runs the cache
already held (a wall time with reused runs is not the recipe's cost), the verdict stability
when the folder was reseeded (``stability.json``: how often the verdict repeated over the fresh
seed sets, with its exact interval) and a link to the report, relative to OUT. A folder with
``failure.json`` gets one row saying it failed and why; one without a summary, one saying so.
It only reads folders, so it can be rebuilt from runs made separately.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import yaml

from transferlab.experiment.invocations import last_invocation
from transferlab.experiment.reseed import STABILITY_NAME, expectation_subject
from transferlab.experiment.suite import FAILURE_NAME
from transferlab.report import formatting as fmt
from transferlab.report.html import REPORT_NAME
from transferlab.report.markup import Markup, esc, join, table, tag

Row = dict[str, Any]
COLUMNS = [
    "recipe",
    "claim",
    "paper",
    "expectation",
    "verdict",
    "effect",
    "n",
    "mde80",
    "wall_time",
    "stability",
    "report",
]
_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f6f6; } td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.reproduced { color: #2e7d32; font-weight: bold; } .failed { color: #c62828; font-weight: bold; }
.not-reproduced { color: #c62828; font-weight: bold; } .note { color: #555; font-size: 0.9em; }
"""


def scoreboard_rows(exp_dirs: list[Path], out_dir: Path) -> list[Row]:
    """The rows of the scoreboard written in ``out_dir`` (links are relative to it)."""
    return [row for exp_dir in exp_dirs for row in _rows_of(Path(exp_dir), Path(out_dir))]


def write_scoreboard(exp_dirs: list[Path], out_dir: Path) -> Path:
    """Write the scoreboard's four files into ``out_dir``; return the page's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = scoreboard_rows(exp_dirs, out_dir)
    (out_dir / "scoreboard.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    (out_dir / "scoreboard.csv").write_text(_csv(rows))
    (out_dir / "scoreboard.md").write_text(markdown(rows))
    page = out_dir / "index.html"
    page.write_text(render(rows))
    return page


def _rows_of(exp_dir: Path, out_dir: Path) -> list[Row]:
    spec = _read_yaml(exp_dir / "experiment.yaml")
    base = {
        "recipe": exp_dir.name,
        "experiment": spec.get("name", exp_dir.name),
        "paper": spec.get("paper", ""),
        "report": os.path.relpath(exp_dir / REPORT_NAME, out_dir),
        **_wall_time(exp_dir),
    }
    failure = _read_json(exp_dir / FAILURE_NAME)
    summary = _read_json(exp_dir / "summary.json")
    if failure is not None or summary is None:
        why = failure["error"] if failure else "no summary.json: it has not run to the end"
        return [{**base, "status": "failed" if failure else "not run", "error": why}]
    stability = (_read_json(exp_dir / STABILITY_NAME) or {}).get("expectations") or []
    rows = []
    for i, verdict in enumerate(summary.get("verdicts") or []):
        rows.append({**base, **_verdict_fields(verdict), **_stability(stability, i, verdict)})
    return rows or [{**base, "status": "none", "error": "no expectation stated"}]


def _verdict_fields(verdict: Row) -> Row:
    expected = str(verdict.get("expected", ""))
    if verdict.get("margin") is not None:
        expected += f" (margin {verdict['margin']:g})"
    return {
        "claim": verdict.get("claim", ""),
        "expectation": f"{expectation_subject(verdict)}: expected {expected}",
        "status": verdict.get("status", "none"),
        "diff": verdict.get("diff"),
        "low": verdict.get("low"),
        "high": verdict.get("high"),
        "level": verdict.get("level"),
        "n_seeds": verdict.get("n_seeds"),
        "n_examples": verdict.get("n_examples"),
        "mde80": verdict.get("mde80"),
    }


def _stability(expectations: list[Row], i: int, verdict: Row) -> Row:
    """The verdict's stability, when the folder was reseeded with the same expectations."""
    found = expectations[i] if i < len(expectations) else None
    if found is None or found.get("claim", "") != verdict.get("claim", ""):
        return {}
    return stability_fields(found["repeats"])


def stability_fields(repeats: Row) -> Row:
    """A ``stability.json`` expectation's ``repeats`` (a Clopper-Pearson proportion) as the
    row fields ``stability_text`` reads."""
    return {
        "repeats": repeats["successes"],
        "reseeds": repeats["n"],
        "stability": repeats["fraction"],
        "stability_low": repeats["low"],
        "stability_high": repeats["high"],
    }


def _wall_time(exp_dir: Path) -> Row:
    entry = last_invocation(exp_dir)
    if entry is None:
        return {}
    return {key: entry[key] for key in ("seconds", "runs", "runs_reused") if key in entry}


def cells(row: Row) -> dict[str, str]:
    """A row as the table's text, column by column (the link as its relative path)."""
    effect = ""
    if "diff" in row:
        effect = fmt.interval(row["diff"], row["low"], row["high"], signed=True)
        effect += f" ({fmt.level(row.get('level'))})"
    n = ""
    if row.get("n_seeds") is not None:
        n = f"{row['n_seeds']} seeds"
        n += f" x {row['n_examples']} examples" if row.get("n_examples") is not None else ""
    wall = fmt.wall_time(row) if "seconds" in row else "n/a"
    return {
        "recipe": row["recipe"],
        "claim": row.get("claim", ""),
        "paper": row.get("paper", ""),
        "expectation": row.get("expectation", ""),
        "verdict": row["status"] + (f": {row['error']}" if row.get("error") else ""),
        "effect": effect,
        "n": n,
        "mde80": fmt.significant(row.get("mde80")) if "mde80" in row else "",
        "wall_time": wall,
        "stability": stability_text(row),
        "report": row["report"],
    }


def stability_text(row: Row) -> str:
    """``4/5 = 0.80 [0.28, 0.99]`` (95% Clopper-Pearson), or ``not reseeded``."""
    if "stability" not in row:
        return "not reseeded"
    interval = f"[{row['stability_low']:.2f}, {row['stability_high']:.2f}]"
    return f"{row['repeats']}/{row['reseeds']} = {row['stability']:.2f} {interval}"


def markdown(rows: list[Row]) -> str:
    def clean(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(clean(v) for v in cells(row).values()) + " |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(cells(row) for row in rows)
    return buffer.getvalue()


def render(rows: list[Row]) -> str:
    body = []
    for row in rows:
        text = cells(row)
        status = row["status"].replace(" ", "-")
        link = Markup(f'<a href="{esc(text["report"])}">report</a>')
        values = [*(text[c] for c in COLUMNS[:4]), tag("span", text["verdict"], cls=status)]
        body.append([*values, *(text[c] for c in COLUMNS[5:-1]), link])
    note = (
        "One row per expectation. Effect: the verdict's difference (variant minus the other "
        "side) with its interval; MDE80: the smallest effect detected 4 times in 5 at this n; "
        "wall time: the folder's last invocation (runs reused from the cache cost nothing); "
        "stability: how often the verdict repeated over fresh seed sets (--reseed K), with its "
        "95% Clopper-Pearson interval."
    )
    page = join([tag("h1", "transferlab scoreboard"), tag("p", note, cls="note")])
    page = join([page, table(COLUMNS, body, {5, 6, 7, 8, 9})])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"{tag('title', 'transferlab scoreboard')}<style>{_CSS}</style></head>"
        f"<body>{page}</body></html>\n"
    )


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
