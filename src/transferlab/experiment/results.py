"""The results store of an experiment: per-example rows and per-run summaries in Parquet.

``EXP_DIR/results/examples.parquet``: one row per (run, task, example), with the variant, seed
and stage of the run (and its size, in a spec with ``sizes``: every table that names a run then
has a ``size`` column), so comparisons can pair examples across variants and seeds. Its metric
columns are the union of what the tasks declare; a task's rows are null in the metrics it does
not declare (``summary.json``'s ``metrics`` says which columns belong to which task).
``EXP_DIR/results/runs.parquet``: one row per run (per stage of a chain): variant, seed, stage,
the run it started from, final losses, its base learning rate, size, cost, optimizer state size in bytes,
and whether (``diverged``) and where (``diverged_step``) it diverged and stopped. A run on
``data.sources`` adds ``final_val_loss/<domain>``, each domain's last validation loss (null in
the rows of runs without that domain), and every run its ``val_weighting``: how its
``final_val_loss`` weighs the domains (``trainer.validation_weighting``; null for runs trained
before it was recorded).
``EXP_DIR/results/data.parquet``: what each variant pretrained on, one row per data domain: the
world, or each source with its training documents and tokens, the tokens the mixture sampled,
epochs, for a curated source the documents curation kept of those it read, the tokenizer
(``variant`` or ``shared`` and its digest), the data warnings of each domain, and a row with
``left_out`` for each domain the mixture gives weight 0.
``EXP_DIR/results/notes.parquet``: what tasks noted about each evaluation as a whole (the
held-out documents ``text_likelihood`` left out because the run pretrained on them, say), one
row per (run, task, note, group): variant, seed, stage, run_id, task, name, group, value,
description.
``EXP_DIR/results/curves.parquet``: the transfer curves (``curves:`` in the spec), one row per
(run, evaluated step, task, example): variant, seed, stage, run_id, step, tokens (trained on by
that step), task, example_id, group and the metrics its task declares; empty without curves.
All are plain Parquet files, readable with duckdb (``SELECT * FROM 'results/*.parquet'``) or pandas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transferlab.artifacts import write_parquet_atomic
from transferlab.data.mixture_warnings import domain_warnings
from transferlab.data.prepare import data_dir
from transferlab.evaluate.downstream import DownstreamConfig, read_downstream
from transferlab.experiment.measures import RunRecord
from transferlab.experiment.planner import Plan, PlannedRun
from transferlab.experiment.spec import ExperimentSpec
from transferlab.train import read_metrics
from transferlab.train.callbacks.validation import DOMAIN_PREFIX
from transferlab.train.checkpoint import read_run_config
from transferlab.train.run_dir import RUN_INFO_FILE


@dataclass(frozen=True)
class ResultTables:
    examples: pa.Table
    runs: pa.Table
    curves: pa.Table = field(default_factory=lambda: pa.Table.from_pylist([], CURVE_SCHEMA))
    measures: pa.Table = field(default_factory=lambda: pa.Table.from_pylist([], MEASURE_SCHEMA))
    notes: pa.Table = field(default_factory=lambda: pa.Table.from_pylist([], NOTE_SCHEMA))

    def at_size(self, size: str) -> ResultTables:
        """The rows of the runs of ``size`` (a spec with ``sizes``: its tables have a size
        column; an empty table has none and stays as it is)."""

        def rows_of(table: pa.Table) -> pa.Table:
            if "size" not in table.column_names:
                return table
            return table.filter(pc.equal(table.column("size"), size))

        return ResultTables(*(rows_of(getattr(self, f.name)) for f in fields(self)))


def results_dir(exp_dir: Path) -> Path:
    return Path(exp_dir) / "results"


def collect_results(plan: Plan, exp_dir: Path) -> ResultTables:
    """Gather finished stages of ``plan`` into the experiment's Parquet tables."""
    examples = []
    for planned in plan.evals:
        table = pq.read_table(planned.rows_path)
        n = table.num_rows
        table = table.append_column("variant", pa.array([planned.run.variant] * n))
        table = table.append_column("seed", pa.array([planned.run.seed] * n, pa.int64()))
        table = table.append_column("stage", pa.array([planned.run.stage] * n, pa.string()))
        if planned.run.size is not None:
            table = table.append_column("size", pa.array([planned.run.size] * n, pa.string()))
        examples.append(table)
    summaries = [run_summary(run) for run in plan.runs]
    # Each run's config and metrics are read again only when there are measures to compute.
    pairs = zip(plan.runs, summaries, strict=True) if plan.spec.measures else []
    records = [run_record(run, summary) for run, summary in pairs]
    tables = ResultTables(
        # Tasks declare different metrics: missing columns become nulls.
        examples=pa.concat_tables(examples, promote_options="default")
        if examples
        else pa.table({}),
        runs=rows_table(summaries),
        curves=curve_table(plan.runs, sized=bool(plan.spec.sizes)),
        measures=measure_table(plan.spec, records),
        notes=note_table(plan),
    )
    out = results_dir(exp_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(tables.examples, out / "examples.parquet")
    write_parquet_atomic(tables.runs, out / "runs.parquet")
    write_parquet_atomic(tables.curves, out / "curves.parquet")
    write_parquet_atomic(tables.measures, out / "measures.parquet")
    write_parquet_atomic(tables.notes, out / "notes.parquet")
    first_runs: dict[str, PlannedRun] = {}
    for run in plan.runs:
        first_runs.setdefault(run.variant, run)  # the seeds of a variant share its data stage
    domains = [row for run in first_runs.values() for row in data_rows(run)]
    write_parquet_atomic(pa.Table.from_pylist(domains, schema=DATA_SCHEMA), out / "data.parquet")
    return tables


# The training state's sizes in bytes, as the trainer records them in run_info.json
# (``optim.TrainingStateBytes.as_dict``).
STATE_SIZES = (
    "parameter_bytes",
    "buffer_bytes",
    "gradient_bytes",
    "optimizer_state_bytes",
    "training_state_bytes",
)


def run_summary(run: PlannedRun) -> dict[str, object]:
    """One row: the run's identity, size, final losses and training cost."""
    rows = read_metrics(run.run_dir / "metrics.jsonl")
    info = json.loads((run.run_dir / "run_info.json").read_text())
    val = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
    train = [r["train_loss"] for r in rows if r.get("train_loss") is not None]
    validation = info.get("validation") or {}
    return {
        **run_identity(run),
        "run_id": run.key,
        "parent": run.parent,
        "steps": rows[-1]["step"] if rows else 0,
        "tokens": rows[-1]["tokens"] if rows else 0,
        "final_val_loss": val[-1] if val else float("nan"),
        "final_train_loss": train[-1] if train else float("nan"),
        **final_domain_losses(rows),
        "val_weighting": validation.get("weighting"),
        "lr": run.config.optimizer.lr,  # the base learning rate (the schedule multiplies it)
        "params_non_embedding": info["params_non_embedding"],
        "params_total": info["params_total"],
        "flops_per_token": info["flops_per_token"],
        "train_seconds": rows[-1].get("elapsed_s", float("nan")) if rows else float("nan"),
        # Absent from runs trained before they were recorded (null in the table).
        **{key: info.get(key) for key in STATE_SIZES},
        # Ended where its loss or gradient became NaN/inf (trainer.on_divergence: stop)
        "diverged": bool(info.get("diverged", False)),
        "diverged_step": info.get("diverged_step"),
    }


def run_identity(run: PlannedRun) -> dict[str, Any]:
    """The columns that say which run a row belongs to: variant, seed, stage and, in a spec
    with ``sizes``, size (absent otherwise, so the tables of such specs are as they were)."""
    identity = {"variant": run.variant, "seed": run.seed, "stage": run.stage}
    return identity if run.size is None else {**identity, "size": run.size}


def with_size(schema: pa.Schema, sized: bool) -> pa.Schema:
    """``schema`` with a ``size`` column after ``stage`` when the spec has ``sizes``."""
    if not sized:
        return schema
    return schema.insert(schema.get_field_index("stage") + 1, pa.field("size", pa.string()))


def final_domain_losses(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``final_val_loss/<domain>``: the last ``val_loss/<domain>`` each domain logged."""
    return {
        f"final_{key}": value
        for row in rows
        for key, value in row.items()
        if key.startswith(DOMAIN_PREFIX) and value is not None
    }


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A table of ``rows`` with the union of their columns (in first-seen order): runs on
    different domains log different per-domain columns, null where a run has none."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return pa.Table.from_pylist([{name: row.get(name) for name in names} for row in rows])


CURVE_SCHEMA = pa.schema(
    [
        ("variant", pa.string()),
        ("seed", pa.int64()),
        ("stage", pa.string()),
        ("run_id", pa.string()),
        ("step", pa.int64()),
        ("tokens", pa.int64()),
        ("task", pa.string()),
        ("example_id", pa.string()),
        ("group", pa.string()),
    ]
)


def curve_table(runs: list[PlannedRun], sized: bool) -> pa.Table:
    """The downstream rows of every run that records them: ``CURVE_SCHEMA`` (with ``size`` when
    ``sized``) plus a float column per metric the runs' downstream tasks declare (null for a
    task that does not)."""
    rows, metrics = [], {}
    for run in runs:
        callback = downstream_callback(run)
        if callback is None:
            continue
        metrics.update({m.name: None for task in callback.tasks for m in task.metrics})
        rows += _curve_rows(run, callback)
    schema = with_size(CURVE_SCHEMA, sized)
    for name in metrics:
        schema = schema.append(pa.field(name, pa.float64()))
    return pa.Table.from_pylist([{c: row.get(c) for c in schema.names} for row in rows], schema)


def downstream_callback(run: PlannedRun) -> DownstreamConfig | None:
    return next((c for c in run.config.trainer.callbacks if isinstance(c, DownstreamConfig)), None)


def _curve_rows(run: PlannedRun, callback: DownstreamConfig) -> list[dict[str, Any]]:
    """``run``'s downstream rows with its identity, refusing a run missing some (step, task)."""
    t = run.config.trainer
    rows = read_downstream(run.run_dir)
    found = {(row["step"], row["task"]) for row in rows}
    missing = [
        f"{task.task_name} at step {step}"
        for step in callback.steps(t.max_steps)
        for task in callback.tasks
        if (step, task.task_name) not in found
    ]
    if missing:
        raise ValueError(
            f"run {run.key} ({run.variant}, seed {run.seed}) has no downstream rows for "
            f"{', '.join(missing)} although it finished; its directory {run.run_dir} is "
            "incomplete: move it away and run the experiment again to retrain it"
        )
    tokens_per_step = t.batch_size * run.config.data.seq_len
    identity = run_identity(run)
    return [{**row, **identity, "tokens": row["step"] * tokens_per_step} for row in rows]


NOTE_SCHEMA = pa.schema(
    [
        ("variant", pa.string()),
        ("seed", pa.int64()),
        ("stage", pa.string()),
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("name", pa.string()),
        ("group", pa.string()),
        ("value", pa.float64()),
        ("description", pa.string()),
    ]
)


def note_table(plan: Plan) -> pa.Table:
    """Every evaluation's notes (``evaluate.TaskNote``: counts about the evaluation as a whole,
    such as held-out documents left out), one row per (run, task, note, group)."""
    rows = []
    for planned in plan.evals:
        if not planned.notes_path.is_file():
            continue
        identity = run_identity(planned.run)
        identity |= {"run_id": planned.run.key, "task": planned.task.task_name}
        rows += [identity | note for note in json.loads(planned.notes_path.read_text())]
    return pa.Table.from_pylist(rows, with_size(NOTE_SCHEMA, bool(plan.spec.sizes)))


MEASURE_SCHEMA = pa.schema(
    [
        ("variant", pa.string()),
        ("seed", pa.int64()),
        ("stage", pa.string()),
        ("run_id", pa.string()),
        ("measure", pa.string()),
        ("value", pa.float64()),
        ("censored", pa.bool_()),
    ]
)


def measure_table(spec: ExperimentSpec, records: list[RunRecord]) -> pa.Table:
    """Each of the spec's measures on each run (of ``records``) of its stage and of the variants
    it reads: ``MEASURE_SCHEMA``."""
    rows = []
    for measure in spec.measures:
        stage = spec.measure_stage(measure)
        for record in records:
            if record.summary["stage"] != stage or not measure.reads(record.summary["variant"]):
                continue
            result = measure.compute(record)
            rows.append(
                {
                    **{key: record.summary[key] for key in ("variant", "seed", "stage", "run_id")},
                    "measure": measure.measure_label,
                    "value": result.value,
                    "censored": result.censored,
                }
            )
    return pa.Table.from_pylist(rows, schema=MEASURE_SCHEMA)


def run_record(run: PlannedRun, summary: dict[str, object]) -> RunRecord:
    """What the measures read of a finished run: its ``summary`` row, metrics, config,
    run_info.json and directory."""
    metrics = read_metrics(run.run_dir / "metrics.jsonl")
    info = json.loads((run.run_dir / RUN_INFO_FILE).read_text())
    return RunRecord(summary, metrics, read_run_config(run.run_dir), info, run.run_dir)


TOKENIZER_DIGITS = 8  # of the tokenizer file's SHA-256 shown per variant: enough to tell apart
DATA_SCHEMA = pa.schema(
    [
        ("variant", pa.string()),
        ("domain", pa.string()),
        ("docs", pa.int64()),
        ("tokens", pa.int64()),
        ("sampled_tokens", pa.int64()),
        ("epochs", pa.float64()),
        ("curation_input_docs", pa.int64()),
        ("curation_kept_docs", pa.int64()),
        ("left_out", pa.bool_()),  # mixture weight 0: nothing of the domain was read
        ("tokenizer", pa.string()),  # its scope and the first hex digits of its SHA-256
        ("warnings", pa.list_(pa.string())),  # ``mixture_warnings.domain_warnings``
    ]
)


def data_rows(run: PlannedRun) -> list[dict[str, object]]:
    """The training split of ``run``'s data stage, one row per domain (one for a world); none
    for an external ``data.path``, which has no data stage, or a stage no longer in the cache.
    Columns: ``DATA_SCHEMA``."""
    cfg = run.config
    info_path = data_dir(cfg) / "info.json"
    if cfg.data.path is not None or not info_path.is_file():
        return []
    info = json.loads(info_path.read_text())
    if "domains" not in info:  # built from a world: all of its training split, once
        train = info["train"]
        return [
            {
                "variant": run.variant,
                "domain": cfg.world.name,
                "docs": train["docs"],
                "tokens": train["tokens"],
                "sampled_tokens": train["tokens"],
                "epochs": 1.0,
            }
        ]
    # Stages built before tokenizer scopes were recorded had variant-scoped tokenizers.
    scope, digest = info.get("tokenizer_scope", "variant"), info.get("tokenizer_sha256")
    tokenizer = f"{scope} {digest[:TOKENIZER_DIGITS]}" if digest else scope
    mixed = [
        {
            "variant": run.variant,
            "domain": d["name"],
            "docs": d["docs"],
            "tokens": d["tokens"],
            "sampled_tokens": d["sampled_tokens"],
            "epochs": d["epochs"],
            "curation_input_docs": d.get("curation", {}).get("input_docs"),
            "curation_kept_docs": d.get("curation", {}).get("kept_docs"),
            "left_out": False,
            "tokenizer": tokenizer,
            "warnings": domain_warnings(d, cfg.data.warnings),
        }
        for d in info["domains"]
    ]
    left_out = [
        {"variant": run.variant, "domain": d["name"], "left_out": True, "tokenizer": tokenizer}
        for d in info.get("left_out", [])
    ]
    return mixed + left_out


def load_results(exp_dir: Path) -> ResultTables:
    out = results_dir(exp_dir)
    if not (out / "examples.parquet").is_file():
        raise FileNotFoundError(
            f"{exp_dir} has no results/examples.parquet; run the experiment first "
            "(transferlab run EXPERIMENT.yaml)"
        )
    # Absent in results written before curves (measures, notes) existed: empty tables.
    later = {
        name: pq.read_table(out / f"{name}.parquet")
        for name in ("curves", "measures", "notes")
        if (out / f"{name}.parquet").is_file()
    }
    return ResultTables(
        pq.read_table(out / "examples.parquet"), pq.read_table(out / "runs.parquet"), **later
    )
