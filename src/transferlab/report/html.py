"""The experiment report: one self-contained HTML page (inline CSS, figures as PNG data URIs, no
scripts) with the verdicts first, then the plan, training curves, the measures of the training
runs, stability (attention logits, loss vs learning rate), expert routing (for runs with the
routing callback), downstream estimates, paired differences, loss-vs-downstream correlations,
per-group tables, the tasks' notes (held-out documents left out, ...) and sample predictions.

Every string that comes from data (names, descriptions, overrides, predictions) goes through the
escaping helpers of ``markup.py``. A Content-Security-Policy forbids scripts and any load from
outside the page, so even a missed escape could not run code or fetch anything.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import yaml

from transferlab.artifacts import remove_stale_temps, temp_path
from transferlab.report import formatting as fmt
from transferlab.report import plots
from transferlab.report.inputs import (
    ExperimentRecord,
    curve_label,
    declared_metrics,
    load_experiment,
    measure_note,
    measure_title,
    metric_label,
    per_run_means,
    unplanned_row,
    verdicts,
    weightings_stated,
)
from transferlab.report.markup import Markup, esc, figure, join, table, tag
from transferlab.report.series import variant_bands
from transferlab.report.stability import LOGIT_KEY, LrSweep, lr_sweep
from transferlab.train.callbacks.validation import DOMAIN_PREFIX

REPORT_NAME = "report.html"
SAMPLE_PREDICTIONS = 5  # per variant, from its first seed
_VERDICT_CLASS = {"reproduced": "good", "not reproduced": "bad"}
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.verdict { border-radius: 6px; padding: 0.8em 1.2em; margin: 1em 0; font-size: 1.15em;
           border: 2px solid #757575; background: #f3f3f3; }
.verdict.good { border-color: #2e7d32; background: #e8f5e9; }
.verdict.bad { border-color: #c62828; background: #ffebee; }
.verdict .status { font-weight: bold; text-transform: uppercase; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f6f6; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption, .note { color: #555; font-size: 0.9em; }
.better { color: #2e7d32; font-weight: bold; } .worse { color: #c62828; font-weight: bold; }
"""


def write_report(exp_dir: Path) -> Path:
    """Write ``EXP_DIR/report.html`` atomically and return its path."""
    record = load_experiment(exp_dir)
    path = Path(exp_dir) / REPORT_NAME
    _write_atomic(path, render(record))
    return path


def render(record: ExperimentRecord) -> str:
    name = record.spec.get("name", record.exp_dir.name)
    colors = plots.variant_colors(record.variants())
    body = [
        tag("h1", f"Experiment: {name}"),
        tag("p", record.spec["description"]) if record.spec.get("description") else "",
        _verdict(record),
        _reproduce(record),
        _plan(record),
        _data(record),
        _training(record, colors),
        _measures(record),
        _stability(record, colors),
        _routing(record, colors),
        _monitors(record, colors),
        _downstream(record, colors),
        _decisions(record),
        _transfer_curves(record, colors),
        _differences(record),
        _correlations(record, colors),
        _groups(record),
        _notes(record),
        _samples(record),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{tag('title', f'transferlab report: {name}')}<style>{_CSS}</style></head>"
        f"<body>{join(body)}</body></html>\n"
    )


def _verdict(record: ExperimentRecord) -> Markup:
    """One box per expectation's verdict, with its claim."""
    if record.summary is None:
        return tag("div", "no verdict yet: the experiment has no summary.json", cls="verdict")
    found = verdicts(record.summary)
    if not found:
        return tag("div", "no verdict: summary.json holds none", cls="verdict")
    boxes = []
    for verdict in found:
        status = str(verdict.get("status", "none"))
        # A summary written before verdicts carried their claim: the spec's single expect.
        claim = verdict.get("claim", _spec_claim(record))
        boxes.append(
            tag(
                "div",
                tag("div", f"verdict: {status}", cls="status"),
                tag("div", verdict.get("text", "")),
                tag("div", f"claim: {claim}", cls="note") if claim else "",
                cls=f"verdict {_VERDICT_CLASS.get(status, 'neutral')}",
            )
        )
    return join(boxes)


def _spec_claim(record: ExperimentRecord) -> str:
    expect = record.spec.get("expect")
    return str(expect.get("claim") or "") if isinstance(expect, dict) else ""


def _reproduce(record: ExperimentRecord) -> Markup:
    command = (record.plan or {}).get("command")
    if not command:
        return tag("p", "no plan.json: the command that reproduces this is unknown", cls="note")
    return join([tag("h2", "Reproduce"), tag("pre", tag("code", command))])


def _plan(record: ExperimentRecord) -> Markup:
    spec = record.spec
    axes = spec.get("axes") or {}
    axis_rows = [
        (axis, level, json.dumps(overrides, sort_keys=True))
        for axis, levels in axes.items()
        for level, overrides in levels.items()
    ]
    tasks = [
        (t.get("name"), json.dumps({k: v for k, v in t.items() if k != "name"}, sort_keys=True))
        for t in spec.get("tasks") or []
    ]
    estimate = (record.plan or {}).get("estimated_seconds")
    parts = [
        tag("h2", "Plan"),
        tag("p", f"Variants ({len(record.variants())}): ", ", ".join(record.variants())),
        tag("p", f"Seeds: {', '.join(str(s) for s in spec.get('seeds') or [])}"),
        table(["axis", "level", "overrides"], axis_rows)
        if axis_rows
        else tag("p", "No axes: one variant."),
        table(["task", "settings"], tasks),
        tag("p", "Comparisons: ", json.dumps(spec.get("compare") or {}, sort_keys=True)),
        tag(
            "p",
            "Expectation: ",
            json.dumps(spec["expect"], sort_keys=True) if spec.get("expect") else "none stated",
        ),
        tag("p", "Measures: ", json.dumps(spec["measures"])) if spec.get("measures") else "",
        tag("p", f"Estimated time when planned: {fmt.duration(estimate)}") if estimate else "",
        _runs_table(record),
        Markup(
            "<details><summary>Base configuration</summary>"
            f"{tag('pre', yaml.safe_dump(spec.get('base') or {}, sort_keys=True))}</details>"
        ),
    ]
    return join(parts)


def _data(record: ExperimentRecord) -> Markup:
    """What each variant pretrained on: per domain, its training split and what was sampled."""
    if not record.data:
        return Markup("")
    rows = [_data_row(row) for row in record.data]
    header = ["variant", "domain", "docs", "tokens", "tokens sampled", "epochs", "curation kept"]
    header.append("tokenizer")  # its scope and digest: variants with one digest share it
    note = (
        "The training split of each variant's data stage (shared by its seeds): documents and "
        "tokens per domain, the tokens the mixture sampled from it and the epochs that makes, "
        "and for a curated source the documents curation kept of those it read. Training then "
        "reads as many of the sampled tokens as its steps take (the Runs table's tokens). A "
        "domain of mixture weight 0 is left out: nothing of it is read. The tokenizer is "
        "trained on each variant's own domains (variant) or on every listed domain (shared); "
        "variants with the same digest read text with the same token ids."
    )
    parts = [tag("h2", "Data"), tag("p", note, cls="note"), table(header, rows)]
    return join([*parts, _data_warnings(record.data)])


def _data_row(row: dict[str, Any]) -> list[str]:
    tokenizer = row.get("tokenizer") or "n/a"  # data.parquet written before it was recorded
    if row.get("left_out"):
        return [row["variant"], row["domain"], "left out (weight 0)", "-", "-", "-", "-", tokenizer]
    return [
        row["variant"],
        row["domain"],
        fmt.count(row["docs"]),
        fmt.count(row["tokens"]),
        fmt.count(row["sampled_tokens"]),
        fmt.number(row["epochs"], digits=2),
        _curation_cell(row),
        tokenizer,
    ]


def _data_warnings(data: list[dict[str, Any]]) -> Markup:
    """Each variant's data warnings (``data.warnings``): heavy repetition, curation that kept
    almost nothing."""
    items = [
        tag("li", f"{row['variant']}: {message}")
        for row in data
        for message in row.get("warnings") or []
    ]
    if not items:
        return Markup("")
    return join([tag("h3", "Data warnings"), tag("ul", *items, cls="warnings")])


def _curation_cell(row: dict[str, Any]) -> str:
    kept, read = row.get("curation_kept_docs"), row.get("curation_input_docs")
    if kept is None or read is None:
        return "none"
    return f"{fmt.count(kept)} of {fmt.count(read)} docs"


def _runs_table(record: ExperimentRecord) -> Markup:
    finished = {str(r["run_id"]): r for r in record.runs}
    evals = (record.plan or {}).get("evals", [])
    rows = []
    for run in record.planned or [unplanned_row(r) for r in record.runs]:
        info = finished.get(run.run_id, {})
        mine = [e for e in evals if str(e.get("run_id")) == run.run_id]
        done = sum(e.get("status") == "done" for e in mine)
        rows.append(
            (
                run.variant,
                run.seed,
                run.run_id,
                f"diverged at step {info['diverged_step']}" if info.get("diverged") else run.status,
                f"{done}/{len(mine)}",
                fmt.count(info.get("steps")),
                fmt.count(info.get("tokens")),
                fmt.number(info.get("final_train_loss")),
                fmt.number(info.get("final_val_loss")),
                fmt.count(info.get("params_non_embedding")),
                fmt.duration(info.get("train_seconds")),
            )
        )
    headers = [
        "variant",
        "seed",
        "run id",
        "status",
        "evals done",
        "steps",
        "tokens",
        "final train loss",
        "final val loss",
        "non-embedding params",
        "train time",
    ]
    return join([tag("h3", "Runs"), table(headers, rows, numeric=set(range(5, 11)))])


def _training(record: ExperimentRecord, colors: dict[str, str]) -> Markup:
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for run in record.planned:
        if record.curves.get(run.run_id):
            curves.setdefault(run.label, []).append(record.curves[run.run_id])
    if not curves:
        return join(
            [tag("h2", "Training curves"), tag("p", "No training metrics yet.", cls="note")]
        )
    seeds = "; ".join(f"{variant}: {len(runs)}" for variant, runs in curves.items())
    caption = (
        "Train and validation loss per variant: the line is the mean over seeds at each step, "
        f"the band spans the lowest to the highest seed. Seeds per variant: {seeds}."
    )
    uri = plots.data_uri(plots.training_curves(curves, colors))
    return join(
        [
            tag("h2", "Training curves"),
            figure(uri, "training curves", caption),
            _domain_validation(record, curves, colors),
        ]
    )


def _domain_validation(
    record: ExperimentRecord, curves: dict[str, list[list[dict[str, Any]]]], colors: dict[str, str]
) -> Markup:
    """Each data domain's validation loss vs step, for runs on ``data.sources`` (nothing for
    runs that logged no per-domain loss), with how ``val_loss`` weighs them."""
    domains = list(
        dict.fromkeys(
            key.removeprefix(DOMAIN_PREFIX)
            for runs in curves.values()
            for rows in runs
            for row in rows
            for key in row
            if key.startswith(DOMAIN_PREFIX)
        )
    )
    if not domains:
        return Markup("")
    stated = weightings_stated(record.runs)
    caption = (
        "Validation loss per data domain: each domain's held-out windows (an equal share of the "
        "validation windows per domain), the mean over seeds at each step and the band from the "
        "lowest to the highest seed. The validation loss above (and final val loss) is "
        f"sum over domains of weight x domain loss, trainer.validation_weighting = {stated}."
    )
    uri = plots.data_uri(plots.domain_val_curves(curves, domains, colors))
    return figure(uri, "validation loss per domain", caption)


def _stability(record: ExperimentRecord, colors: dict[str, str]) -> Markup:
    """Attention-logit growth and final loss vs learning rate, for the runs that recorded them
    (nothing at all when none did)."""
    growth = variant_bands(_curves_by_stage(record), LOGIT_KEY)
    sweep = lr_sweep(record.spec.get("axes") or {}, record.runs, record.stages()[-1])
    if not growth and sweep is None:
        return Markup("")
    parts = [tag("h2", "Stability")]
    if growth:
        caption = (
            "The largest attention logit (q.k / sqrt(head_dim) over the layers, heads and "
            "positions of the step's first micro batch, logged by the stability callback) "
            "against the training step: per variant the mean over seeds (line) and the lowest to "
            "the highest seed (band). Logits that keep growing precede attention-entropy "
            "collapse; QK-norm bounds them."
        )
        uri = plots.data_uri(plots.attention_logit_growth(growth, colors))
        parts.append(figure(uri, "max attention logit vs step", caption))
    if sweep is not None:
        parts += _lr_sweep(sweep)
    return join(parts)


def _curves_by_stage(record: ExperimentRecord) -> dict[str, list[list[dict[str, Any]]]]:
    """Each variant's metrics lists (one per seed), per stage when the spec chains several."""
    chained = len(record.stages()) > 1
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for run in record.planned:
        if record.curves.get(run.run_id):
            name = f"{run.variant} ({run.stage})" if chained else run.variant
            curves.setdefault(name, []).append(record.curves[run.run_id])
    return curves


def _lr_sweep(sweep: LrSweep) -> list[Markup]:
    caption = (
        f"Final validation loss against the learning rate that axis {sweep.axis} sets (log "
        "scale), one line per level of the other axes: the mean over seeds (dots) and the "
        "lowest to the highest seed (band). A flatter line is a variant less sensitive to the "
        "learning rate."
    )
    if sweep.dropped:
        caption += (
            f" Left out: {sweep.dropped} runs without a final validation loss (a run that "
            "diverged and stopped has none)."
        )
    colors = plots.variant_colors(list(sweep.lines))
    uri = plots.data_uri(plots.loss_vs_lr(sweep.lines, sweep.axis, colors))
    rows = [
        (line, f"{lr:.3g}", fmt.interval(mean, low, high), n)
        for line, band in sweep.lines.items()
        for lr, mean, low, high, n in zip(
            band.x, band.mean, band.low, band.high, band.n, strict=True
        )
    ]
    headers = ["line", "learning rate", "final val loss: mean [lowest, highest seed]", "seeds"]
    return [
        figure(uri, "final validation loss vs learning rate", caption),
        table(headers, rows, {1, 2, 3}),
    ]


def _routing(record: ExperimentRecord, colors: dict[str, str]) -> Markup:
    """For runs with the routing callback: domain specialization over training per variant, and
    each variant's final expert loads per domain."""
    if not record.routing:
        return Markup("")
    note = (
        "Measured on each data domain's held-out windows: the share of the domain's token-slots "
        "each expert takes, per MoE layer. Specialization is the Jensen-Shannon divergence "
        "between two domains' loads in bits (0: the same loads, 1: disjoint experts), averaged "
        "over the pairs of domains and the layers."
    )
    return join(
        [
            tag("h2", "Expert routing"),
            tag("p", note, cls="note"),
            _specialization_curves(record, colors),
            _expert_loads(record),
        ]
    )


def _logged_curves(record: ExperimentRecord, key: str) -> dict[str, list[list[dict[str, Any]]]]:
    """Per variant, one list per run of the metrics rows that log ``key`` (runs without any
    are left out)."""
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for run in record.planned:
        rows = [r for r in record.curves.get(run.run_id, []) if key in r]
        if rows:
            curves.setdefault(run.variant, []).append(rows)
    return curves


def _specialization_curves(record: ExperimentRecord, colors: dict[str, str]) -> Markup:
    curves = _logged_curves(record, "routing_specialization")
    if not curves:
        return Markup("")
    label = "specialization (JS divergence, bits)"
    uri = plots.data_uri(plots.metric_curves(curves, "routing_specialization", label, colors))
    caption = (
        "Specialization vs step per variant: the line is the mean over seeds, the band spans "
        "the lowest to the highest seed."
    )
    return figure(uri, "routing specialization over training", caption)


# The monitors of memorization vs generalization that need no held-out data (the weight_norm
# and fourier_embedding callbacks): metrics.jsonl key -> (axis label, what it shows).
MONITORS = {
    "weight_norm": (
        "weight norm (L2)",
        "Total L2 norm of the trained parameters (weight_norm callback): weight decay shrinks "
        "a memorizing solution, and the norm falls as a generalizing one takes over.",
    ),
    "matrix_norm": (
        "matrix norm (L2)",
        "L2 norm of the matrices and embeddings only (weight_norm callback), without the norm "
        "gains that dominate a small model's total and that weight decay leaves alone.",
    ),
    "fourier_top_k_energy": (
        "Fourier top-k energy share",
        "Share of the residue embeddings' energy in their top-k Fourier frequencies "
        "(fourier_embedding callback; the constant term left out): about k / ((p - 1) / 2) "
        "for an unstructured embedding, 1 when the residues lie on k frequencies.",
    ),
}


def _monitors(record: ExperimentRecord, colors: dict[str, str]) -> Markup:
    """The monitors vs step per variant, for the runs that logged them (nothing otherwise)."""
    figures = []
    for key, (label, what) in MONITORS.items():
        curves = _logged_curves(record, key)
        if curves:
            uri = plots.data_uri(plots.metric_curves(curves, key, label, colors))
            caption = f"{what} The line is the mean over seeds, the band spans the seeds."
            figures.append(figure(uri, key.replace("_", " "), caption))
    if not figures:
        return Markup("")
    return join([tag("h2", "Memorization and generalization monitors"), *figures])


def _expert_loads(record: ExperimentRecord) -> Markup:
    """A heatmap per variant, from its first seed that has one (experts are interchangeable
    between seeds, so their loads do not average), and every run's final values in a table."""
    parts, rows, drawn = [], [], set()
    for run in record.planned:
        routing = record.routing.get(run.run_id)
        if routing is None:
            continue
        specialization = fmt.number(routing.get("specialization"))
        rows.append(
            (run.variant, run.seed, routing["step"], ", ".join(routing["domains"]), specialization)
        )
        if run.variant in drawn:
            continue
        drawn.add(run.variant)
        uniform = 1 / len(routing["loads"][0][0])
        caption = (
            f"{run.variant}, seed {run.seed}: expert loads per domain and layer at step "
            f"{routing['step']} (uniform routing: {uniform:.2f} per expert)."
        )
        parts.append(
            figure(
                plots.data_uri(plots.expert_loads(routing)),
                f"expert loads of {run.variant}",
                caption,
            )
        )
    headers = ["variant", "seed", "step", "domains", "specialization"]
    return join([*parts, table(headers, rows, {1, 2, 4})])


MDE80_NOTE = (
    "MDE80: the minimum detectable effect at 80% power, from the same variance and degrees of "
    "freedom as the interval and for the same n; an effect smaller than this would be missed 20% "
    "of the time or more, so an inconclusive verdict says little about effects smaller than it."
)


def _measures(record: ExperimentRecord) -> Markup:
    """Per measure of the training runs: its estimates over seeds and paired comparisons."""
    measures = (record.summary or {}).get("measures") or []
    if not measures:
        return Markup("")
    level = _level(record)
    note = (
        "One value per run (per variant and seed), from its metrics.jsonl or its row of "
        "results/runs.parquet; a measure over an axis has one value per variant of the other "
        f"axes. Means with their {level} t interval over seeds; differences paired by seed. "
        "p (Holm): adjusted over the measure's comparisons. A level picked by best final "
        "validation loss was picked on the same seeds that are compared, which favours it. "
        f"{MDE80_NOTE}"
    )
    parts = [tag("h2", "Measures of the training runs"), tag("p", note, cls="note")]
    for measure in measures:
        estimates = [
            (
                e["variant"],
                fmt.quantity_interval(e["mean"], e["low"], e["high"]),
                e["n_seeds"],
                measure_note(e),
            )
            for e in measure["estimates"]
        ]
        comparisons = [
            (
                f"{c['variant']} vs {c['reference']}",
                fmt.quantity_interval(c["diff"], c["low"], c["high"], signed=True),
                fmt.p_value(c.get("p_value")),
                fmt.p_value(c.get("p_holm")),
                fmt.significant(c.get("mde80")),
                _verdict_cell(c["verdict"]),
                c["n_seeds"],
                measure_note(c),
            )
            for c in measure["comparisons"]
        ]
        parts += [
            tag("h3", measure_title(measure)),
            tag("p", measure.get("description", ""), cls="note"),
            table(["variant", f"mean [{level} interval]", "seeds", "note"], estimates, {1, 2}),
        ]
        if comparisons:
            difference = f"difference [{level} interval]"
            headers = ["comparison", difference, "p", "p (Holm)", "MDE80", "verdict", "seeds"]
            parts.append(table([*headers, "note"], comparisons, {1, 2, 3, 4, 6}))
    return join(parts)


def _summary_rows(record: ExperimentRecord, key: str, task: str) -> list[dict[str, Any]]:
    return [row for row in (record.summary or {}).get(key, []) if row.get("task") == task]


def _by_metric(rows: list[dict[str, Any]], first: str) -> list[dict[str, Any]]:
    """Rows of metric ``first`` first, the others after in their original order."""
    return sorted(rows, key=lambda row: row.get("metric") != first)


def _downstream(record: ExperimentRecord, colors: dict[str, str]) -> Markup:
    parts = [tag("h2", "Downstream results")]
    if record.summary is None:
        return join([*parts, tag("p", "No summary.json yet: no estimates.", cls="note")])
    for task in record.tasks():
        shown = record.shown_metric(task)
        estimates = _by_metric(_summary_rows(record, "estimates", task), shown)
        parts += [tag("h3", f"Task: {task}"), _declarations(record, task)]
        if not estimates:
            parts.append(tag("p", "No estimates for this task.", cls="note"))
            continue
        main = [e for e in estimates if e["metric"] == shown]
        if main:
            label = metric_label(record.summary, task, shown)
            caption = (
                f"{label} per variant: mean (dot) and {_level(record)} interval (line); "
                "n = seeds x examples."
            )
            uri = plots.data_uri(plots.estimate_whiskers(main, label, colors))
            parts.append(figure(uri, f"{shown} on {task} per variant", caption))
        rows = [
            (
                e["metric"],
                fmt.at_size(e["variant"], e),
                fmt.interval(e["mean"], e["low"], e["high"]),
                fmt.seeds_by_examples(e),
                _seed_note(e),
            )
            for e in estimates
        ]
        headers = ["metric", "variant", f"mean [{_level(record)} interval]", "n", "note"]
        parts.append(table(headers, rows, {2}))
    return join(parts)


def _decisions(record: ExperimentRecord) -> Markup:
    """Decision accuracy of each smaller size against the largest, per task and metric, with
    the signal-to-noise ratio per size (a spec with ``sizes`` only)."""
    decisions = (record.summary or {}).get("decisions")
    if not decisions:
        return ""
    sizes, level = decisions["sizes"], _level(record)
    parts = [
        tag("h2", "Decisions across sizes"),
        tag("p", DECISIONS_NOTE.format(largest=decisions["largest"]), cls="note"),
    ]
    for task in dict.fromkeys(str(r["task"]) for r in decisions["accuracy"]):
        rows = [r for r in decisions["accuracy"] if r["task"] == task]
        target = rows[0]["target_metric"]
        caption = (
            f"Decision accuracy on {task} against the order at {decisions['largest']} by "
            f"{target}, with its {level} seed-bootstrap interval; n = {rows[0]['n_pairs']} pairs "
            f"x {rows[0]['n_seeds']} seeds."
        )
        uri = plots.data_uri(plots.decision_accuracy(rows, sizes, decisions["chance"]))
        parts += [tag("h3", f"Task: {task}"), figure(uri, f"decision accuracy on {task}", caption)]
        snr = {(r["metric"], r["size"]): r for r in decisions["snr"] if r["task"] == task}
        cells = [
            (
                r["metric"],
                r["size"],
                fmt.interval(r["accuracy"], r["low"], r["high"]),
                f"{r['n_pairs']} pairs x {r['n_seeds']} seeds",
                fmt.number((snr.get((r["metric"], r["size"])) or {}).get("snr"), 2),
            )
            for r in rows
        ]
        headers = ["metric", "size", f"decision accuracy [{level} interval]", "n", "SNR"]
        parts.append(table(headers, cells, {2, 4}))
    return join(parts)


DECISIONS_NOTE = (
    "Decision accuracy: the fraction of variant pairs a smaller size orders as {largest} does "
    "(a tie counts 1/2, so chance is 1/2); the interval resamples the seeds of each size. SNR: "
    "the range of the variant means over their pooled seed standard deviation."
)


def _transfer_curves(record: ExperimentRecord, colors: dict[str, str]) -> Markup:
    """Per task of the spec's ``curves``, its headline metric vs training step per variant."""
    rows = (record.summary or {}).get("curves") or []
    if not rows:
        return Markup("")
    every = (record.spec.get("curves") or {}).get("every")
    parts = [tag("h2", "Transfer curves")]
    for task in dict.fromkeys(str(row["task"]) for row in rows):
        mine = [row for row in rows if row["task"] == task]
        first = mine[0]
        label = curve_label(first)
        caption = (
            f"{task} during training (stage {first['stage']}, evaluated every {every} steps and "
            f"at the last): {label} per variant, the mean over seeds and examples (line) with "
            f"its {_level(record)} interval (band); n = seeds x examples per point in the table."
        )
        uri = plots.data_uri(plots.transfer_curve(mine, label, colors))
        table_rows = [
            (
                row["step"],
                fmt.count(row["tokens"]),
                fmt.at_size(row["variant"], row),
                fmt.interval(row["mean"], row["low"], row["high"]),
                fmt.seeds_by_examples(row),
            )
            for row in mine
        ]
        headers = ["step", "tokens", "variant", f"mean [{_level(record)} interval]", "n"]
        parts += [
            tag("h3", f"Task: {task}"),
            figure(uri, f"transfer curve of {first['metric']} on {task}", caption),
            Markup("<details><summary>Values</summary>"),
            table(headers, table_rows, {0, 1, 3}),
            Markup("</details>"),
        ]
    return join(parts)


def _declarations(record: ExperimentRecord, task: str) -> Markup:
    """The metrics ``task`` declares, and a note when it is not compared on the primary one."""
    declared = declared_metrics(record.summary or {}, task)
    rows = [
        (
            m["name"],
            "higher" if m["higher_is_better"] else "lower",
            fmt.metric_range(m["range"]),
            m["description"],
        )
        for m in declared
    ]
    skipped = [s for s in (record.summary or {}).get("skipped", []) if s.get("task") == task]
    notes = [
        tag("p", f"Not compared on {s['metric']}: {s['reason']}.", cls="note") for s in skipped
    ]
    if not rows:
        return join(notes)
    return join([table(["metric", "better", "range", "description"], rows), *notes])


def _level(record: ExperimentRecord) -> str:
    return fmt.level((record.summary or {}).get("level"))


def _seed_note(row: dict[str, Any]) -> str:
    if row.get("seed_variance_captured", True):
        return ""
    return "one seed: the interval covers example-to-example variation only"


def _differences(record: ExperimentRecord) -> Markup:
    parts = [tag("h2", "Paired differences"), tag("p", MDE80_NOTE, cls="note")]
    for task in record.tasks():
        shown = record.shown_metric(task)
        comparisons = _by_metric(_summary_rows(record, "comparisons", task), shown)
        if not comparisons:
            continue
        parts.append(tag("h3", f"Task: {task}"))
        main = [c for c in comparisons if c["metric"] == shown]
        if main:
            label = metric_label(record.summary or {}, task, shown)
            caption = (
                f"Paired difference in {label} (variant minus reference, same seeds and "
                "examples) with its interval; colour = verdict; the grey band, if any, is the "
                "minimum effect that counts."
            )
            uri = plots.data_uri(plots.forest(main, label))
            parts.append(figure(uri, f"forest plot of {shown} differences on {task}", caption))
        # compare.correction: the comparisons carry p_holm and their Bonferroni level.
        corrected = any("p_holm" in c for c in comparisons)
        rows = [
            (
                c["metric"],
                fmt.at_size(f"{c['variant']} vs {c['reference']}", c),
                fmt.interval(c["diff"], c["low"], c["high"], signed=True),
                fmt.p_value(c.get("p_value")),
                *([fmt.p_value(c.get("p_holm"))] if corrected else []),
                fmt.number(c.get("mde80")),
                _verdict_cell(c["verdict"]),
                fmt.seeds_by_examples(c),
                _comparison_note(c),
            )
            for c in comparisons
        ]
        level = "Bonferroni-level" if corrected else _level(record)
        interval = f"difference [{level} interval]"
        p_headers = ["p", "p (Holm)"] if corrected else ["p"]
        headers = ["metric", "comparison", interval, *p_headers, "MDE80", "verdict", "n", "note"]
        parts.append(table(headers, rows, set(range(2, 4 + len(p_headers)))))
    if len(parts) == 2:
        parts.append(tag("p", "No comparisons yet.", cls="note"))
    return join(parts)


def _verdict_cell(verdict: str) -> Markup:
    return tag("span", verdict, cls=verdict if verdict in plots.VERDICT_COLORS else None)


def _comparison_note(row: dict[str, Any]) -> str:
    notes = []
    if row.get("min_effect"):
        notes.append(f"min effect {fmt.number(row['min_effect'])}")
    if not row.get("higher_is_better", True):
        notes.append("lower is better")
    if row.get("n_dropped"):
        notes.append(f"{row['n_dropped']} unpaired rows dropped")
    seed_note = _seed_note(row)
    return "; ".join([*notes, seed_note] if seed_note else notes)


def _correlations(record: ExperimentRecord, colors: dict[str, str]) -> Markup:
    parts = [tag("h2", "Validation loss vs downstream")]
    losses = {str(r["run_id"]): (str(r["variant"]), r.get("final_val_loss")) for r in record.runs}
    for task in record.tasks():
        shown = record.shown_metric(task)
        correlations = _by_metric(_summary_rows(record, "correlations", task), shown)
        means = per_run_means(record.examples, task, shown)
        points = [
            (losses[run_id][0], losses[run_id][1], mean)
            for run_id, mean in means.items()
            if run_id in losses and fmt.is_number(losses[run_id][1])
        ]
        if not points and not correlations:
            continue
        parts.append(tag("h3", f"Task: {task}"))
        if points:
            main = next((c for c in correlations if c["metric"] == shown), None)
            caption = f"One dot per run: final validation loss vs mean {shown}. {_rho_text(main)}"
            uri = plots.data_uri(plots.loss_scatter(points, shown, colors))
            parts.append(figure(uri, f"validation loss vs {shown} on {task}", caption))
        rows = [
            (
                fmt.at_size(c["metric"], c),
                fmt.interval(c["rho"], c["low"], c["high"], signed=True),
                f"{c.get('n_runs')} runs",
                c.get("reason") or "",
            )
            for c in correlations
        ]
        headers = ["metric", f"Spearman rho [{_level(record)} interval]", "n", "note"]
        parts.append(table(headers, rows, {1}))
    if len(parts) == 1:
        parts.append(tag("p", "No runs with both a validation loss and results yet.", cls="note"))
    return join(parts)


def _rho_text(row: dict[str, Any] | None) -> str:
    if row is None:
        return "No rank correlation computed."
    n = f"n = {row.get('n_runs')} runs"
    if not fmt.is_number(row.get("rho")):
        return f"Spearman rho undefined ({row.get('reason') or 'no reason given'}; {n})."
    rho = fmt.interval(row["rho"], row["low"], row["high"], signed=True)
    return (
        f"Spearman rho = {rho} ({fmt.level(row.get('level'))} bootstrap interval over runs; {n})."
    )


def _groups(record: ExperimentRecord) -> Markup:
    parts = [tag("h2", "Per-group results")]
    for task in record.tasks():
        rows = _summary_rows(record, "groups", task)
        if not rows:
            continue
        # Columns: the variants, or in a spec with sizes each variant at each size.
        labelled = [(fmt.at_size(str(r["variant"]), r), r) for r in rows]
        variants = list(dict.fromkeys(label for label, _ in labelled))
        cells = {(str(r["group"]), label): r for label, r in labelled}
        groups = list(dict.fromkeys(str(r["group"]) for r in rows))
        body = [
            [group, *(_group_cell(cells.get((group, v))) for v in variants)] for group in groups
        ]
        metric = rows[0].get("metric", record.primary_metric())
        parts += [
            tag(
                "h3", f"Task: {task} ({metric}: mean [{_level(record)} interval], seeds x examples)"
            ),
            table(["group", *variants], body, set(range(1, len(variants) + 1))),
        ]
    if len(parts) == 1:
        parts.append(tag("p", "No per-group results.", cls="note"))
    return join(parts)


def _notes(record: ExperimentRecord) -> Markup:
    """Per task, what it noted about its evaluations (summary ``notes``), by group and variant;
    nothing for an experiment whose tasks noted nothing."""
    parts = []
    variants = record.variants()
    for task in record.tasks():
        rows = _summary_rows(record, "notes", task)
        if not rows:
            continue
        cells = {(str(r["name"]), str(r["group"]), str(r["variant"])): r for r in rows}
        keys = dict.fromkeys((str(r["name"]), str(r["group"])) for r in rows)
        body = [
            [name, group, *(fmt.note_value(cells.get((name, group, v))) for v in variants)]
            for name, group in keys
        ]
        described = {str(r["name"]): str(r["description"]) for r in rows}
        parts += [
            tag("h3", f"Task: {task}"),
            table(["note", "group", *variants], body, set(range(2, len(variants) + 2))),
            tag("p", "; ".join(f"{n}: {d}" for n, d in described.items()), cls="note"),
        ]
    return join([tag("h2", "Task notes"), *parts]) if parts else join([])


def _group_cell(row: dict[str, Any] | None) -> Markup:
    if row is None:
        return esc("n/a")
    n = f"{row.get('n_seeds')} x {row.get('n_examples')}"
    return join(
        [
            fmt.interval(row["mean"], row["low"], row["high"]),
            Markup("<br>"),
            tag("span", n, cls="note"),
        ]
    )


def _samples(record: ExperimentRecord) -> Markup:
    """A few raw predictions per variant, so a reader sees what the numbers are made of."""
    examples, tasks = record.examples, record.tasks()
    if examples is None or not tasks:
        return Markup("")
    task = tasks[0]
    declared = [m["name"] for m in declared_metrics(record.summary or {}, task)]
    wanted = ["example_id", "group", "target", "prediction", *declared]
    if not {"task", *wanted} <= set(examples.column_names):
        return Markup("")
    chosen = examples.filter(pc.equal(examples.column("task"), task))
    first_seed: dict[str, Any] = {}
    shown: Counter[str] = Counter()
    rows = []
    for row in chosen.select(["variant", "seed", *wanted]).to_pylist():
        variant = row["variant"]
        if row["seed"] != first_seed.setdefault(variant, row["seed"]):
            continue
        if shown[variant] < SAMPLE_PREDICTIONS:
            shown[variant] += 1
            rows.append([_cell(row[c]) for c in ("variant", "seed", *wanted)])
    caption = f"The first {SAMPLE_PREDICTIONS} examples of {task} per variant, from its first seed."
    return join(
        [
            tag("h2", "Sample predictions"),
            tag("p", caption, cls="note"),
            table(["variant", "seed", *wanted], rows),
        ]
    )


def _cell(value: Any) -> Any:
    """Scores to three decimals, NaN (a score undefined for the example) as n/a."""
    return fmt.number(value) if isinstance(value, float) else value


def _write_atomic(path: Path, text: str) -> None:
    remove_stale_temps(path.parent)  # a killed writer's copy
    tmp = temp_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
