"""The ``transferlab`` command line: worlds, training, export, experiments, results, recipes."""

from __future__ import annotations

import os
import shlex
import sys
import warnings
from pathlib import Path

import typer
import yaml
from rich.console import Console

from transferlab.config import ConfigError, RunConfig, load_config

app = typer.Typer(
    help="Pretrain variants, transfer them to downstream tasks, compare them with statistics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
world_app = typer.Typer(help="Synthetic worlds: corpora and tasks with known answers.")
app.add_typer(world_app, name="world")
recipes_app = typer.Typer(help="Packaged experiments that test published claims.")
app.add_typer(recipes_app, name="recipes")
data_app = typer.Typer(
    help="Real text: curate sources, inspect what curation removed, corpus stats."
)
app.add_typer(data_app, name="data")
checkpoint_app = typer.Typer(help="Checkpoints of a run: make a sharded one a single file.")
app.add_typer(checkpoint_app, name="checkpoint")
console = Console()
err_console = Console(stderr=True)

OVERRIDES = typer.Argument(
    None, help="Dotted overrides, e.g. model.d_model=128 trainer.max_steps=50"
)
FORCE = typer.Option(
    False,
    "--force",
    help="Replace the output if it is an earlier one of this kind transferlab wrote.",
)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _check_output(out: Path, kind: str, force: bool, sources: list[Path]) -> None:
    """Refuse, before any work, an output path whose replacement would lose a user's files."""
    from transferlab.artifacts import OutputRefused, check_output

    try:
        check_output(out, kind, force, sources)
    except OutputRefused as exc:
        _fail(str(exc))


def _load_run_config(config: Path | None, overrides: list[str] | None) -> RunConfig:
    try:
        return load_config(RunConfig, config, overrides or [])
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers quiet


@app.command()
def train(
    config: Path = typer.Argument(..., help="Run config YAML (see configs/)."),
    overrides: list[str] = OVERRIDES,
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    allow_changes: bool = typer.Option(
        False,
        "--allow-changes",
        help="With --resume: accept overrides of trainer fields that leave the result alone "
        "(max_steps, intervals, micro_batch_size, device, parallelism ...); config.yaml is "
        "rewritten.",
    ),
    from_run: Path | None = typer.Option(
        None, "--from", help="Start from this run directory's checkpoint (sets init.from_run)."
    ),
    from_step: int | None = typer.Option(
        None, "--from-step", help="Which checkpoint of --from (default: its latest)."
    ),
    with_optimizer: bool = typer.Option(
        False, "--with-optimizer", help="Also take --from's optimizer state (init.optimizer)."
    ),
) -> None:
    """Pretrain one run: world -> tokenizer -> packed data -> model, with checkpoints; with
    --from, continue another run's weights under this config in this run's own directory."""
    from transferlab.train import TrainingDiverged
    from transferlab.train import train as run_training
    from transferlab.train.init import check_init

    if allow_changes and not resume:
        _fail("--allow-changes only applies with --resume")
    if from_run is None and (from_step is not None or with_optimizer):
        _fail("--from-step and --with-optimizer need --from RUN_DIR")
    if from_run is not None:
        init = [f"init.from_run={from_run}", f"init.optimizer={str(with_optimizer).lower()}"]
        overrides = [*(overrides or []), *init]
        if from_step is not None:
            overrides.append(f"init.step={from_step}")
    cfg = _load_run_config(config, overrides)
    try:
        check_init(cfg)  # a bad parent fails before any data is prepared
        result = run_training(cfg, resume=resume, allow_changes=allow_changes)
    except TrainingDiverged as exc:
        _fail(str(exc), code=1)
    except (ConfigError, ValueError, FileExistsError, FileNotFoundError) as exc:
        _fail(str(exc))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 speaks for all
        return
    if result.interrupted:
        console.print(f"interrupted at step {result.steps}; continue with --resume")
    if result.diverged_step is not None:
        console.print(
            f"diverged at step {result.diverged_step} (trainer.on_divergence: stop): the run "
            "ends there, recorded as diverged in run_info.json"
        )
    console.print(
        f"parameters: {result.params_total:,} ({result.params_non_embedding:,} non-embedding); "
        f"{result.flops_per_token:,} training FLOPs/token; {result.tokens:,} tokens in "
        f"{result.steps} steps; train loss {_fmt(result.train_loss)}, "
        f"val loss {_fmt(result.val_loss)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"run: {result.run_dir}", highlight=False, soft_wrap=True)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@app.command("export-hf")
def export_hf(
    run_dir: Path = typer.Argument(..., help="A run directory written by `transferlab train`."),
    out_dir: Path = typer.Argument(..., help="Where to write the Hugging Face model."),
    step: int | None = typer.Option(None, help="Checkpoint step (default: the latest)."),
    force: bool = FORCE,
) -> None:
    """Export a causal run as a transformers model (LlamaForCausalLM) plus its tokenizer."""
    from transferlab.models.hf_export import EXPORT_KIND, export_llama
    from transferlab.train.checkpoint import load_run

    _check_output(out_dir, EXPORT_KIND, force, [run_dir])
    try:
        loaded = load_run(run_dir, step=step)
        objective = loaded.config.objective
        if objective.name != "clm":
            why = (
                ": its model is a replaced-token discriminator (bidirectional, no LM head), "
                "which a causal LM would misread; its checkpoint holds it (load_run)"
                if objective.reading == "discriminator"
                else ""
            )
            _fail(
                f"run {run_dir} was trained with {objective.name!r}{why}; "
                "only causal (clm) runs export as LlamaForCausalLM"
            )
        path = export_llama(loaded.model, loaded.tokenizer_path, out_dir)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(f"exported: {path}")


@checkpoint_app.command("consolidate")
def checkpoint_consolidate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `transferlab train`."),
    step: int | None = typer.Option(None, help="Checkpoint step (default: the latest)."),
) -> None:
    """Write model.safetensors of a sharded checkpoint (an fsdp run's) from its shards, in one
    process; the checkpoint stays resumable. An fsdp run's last checkpoint has one already."""
    from transferlab.artifacts import CorruptArtifact
    from transferlab.train.checkpoint import consolidate_checkpoint, find_checkpoint

    try:
        path = consolidate_checkpoint(find_checkpoint(run_dir, step))
    except (ConfigError, ValueError, CorruptArtifact) as exc:
        _fail(str(exc))
    console.print(f"consolidated: {path}", highlight=False, soft_wrap=True)


@world_app.command("build")
def world_build(
    config: Path = typer.Argument(..., help="Run config YAML; its `world` section is built."),
    overrides: list[str] = OVERRIDES,
    out: Path | None = typer.Option(None, help="Output directory (default: worlds/NAME-KEY)."),
    force: bool = FORCE,
) -> None:
    """Write a world's corpus, QA items, people split and ground-truth table."""
    from transferlab.artifacts import content_key
    from transferlab.worlds import build_world
    from transferlab.worlds.base import WORLD_KIND

    cfg = _load_run_config(config, overrides)
    out = out or Path("worlds") / f"{cfg.world.name}-{content_key(cfg.world.to_dict())}"
    _check_output(out, WORLD_KIND, force, [config])
    path = build_world(cfg.world, out)
    console.print(f"world: {path}")


EXP_DIR_OPTION = typer.Option(
    None, "--out", help="Experiment directory (default: experiments/NAME)."
)


RESEED = typer.Option(
    0,
    "--reseed",
    min=0,
    help="Also run K fresh, disjoint seed sets (EXP_DIR/reseed-1 ...) and write "
    "stability.json: how often each verdict repeats.",
)


def _load_experiment(path: Path, preset: str | None, overrides: list[str] | None):
    from transferlab.experiment import load_experiment

    try:
        return load_experiment(path, preset=preset, overrides=overrides or [])
    except ConfigError as exc:
        _fail(str(exc))


def _run_experiment(
    spec, out: Path | None, jobs: int, executor: str, dry_run: bool, reseed: int = 0
) -> None:
    from transferlab.experiment import plan_experiment, run_experiment, write_plan
    from transferlab.experiment.executor import check_execution
    from transferlab.experiment.reseed import run_reseeded, run_set
    from transferlab.report import print_summary
    from transferlab.report.terminal import print_stability

    exp_dir = out or Path("experiments") / spec.name
    command = shlex.join(["transferlab", *sys.argv[1:]])
    try:
        check_execution(executor, jobs)
        if dry_run:
            _print_plan(write_plan(plan_experiment(spec), exp_dir, command, jobs))
            return
        if reseed:
            run = run_set(jobs, executor, command, console.print)
            stability = run_reseeded(spec, exp_dir, reseed, run, console.print)
        else:
            result = run_experiment(spec, exp_dir, jobs=jobs, executor=executor)
            console.print(f"report: {result.report}", highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume where it stopped", code=130)
    except (ConfigError, ValueError, FileExistsError, FileNotFoundError) as exc:
        _fail(str(exc))
    print_summary(exp_dir, console)  # its last line is the verdict, printed once
    if reseed:
        print_stability(stability, console)


def _print_plan(info: dict) -> None:
    """The plan as a graph: per variant and seed its chain of stages, each stage after the one
    it starts from; a stage that variants share has one run id."""
    from rich.table import Table

    stage_of = {run["run_id"]: run["stage"] for run in info["runs"]}
    table = Table(title="plan")
    for column in ("variant", "seed", "stage", "from", "run", "status", "evaluations to do"):
        table.add_column(column, no_wrap=column == "run")  # a run id is read whole
    for run in info["runs"]:
        todo = {
            e["task"]: None
            for e in info["evals"]
            if e["run_id"] == run["run_id"] and e["status"] != "done"
        }
        table.add_row(
            f"{run['variant']} @ {run['size']}" if "size" in run else run["variant"],
            str(run["seed"]),
            run["stage"],
            stage_of[run["parent"]] if run["parent"] else "-",
            run["run_id"],
            run["status"],
            ", ".join(todo) or "-",
        )
    console.print(table)
    minutes = info["estimated_seconds"] / 60
    console.print(
        f"estimated time: {minutes:.1f} min on this machine with {info['jobs']} job(s) (a few "
        "training steps of each model timed here, plus validation and evaluation)"
    )


@app.command("run")
def run_cmd(
    experiment: Path = typer.Argument(
        ..., help="Experiment YAML (base, axes, seeds, tasks, compare)."
    ),
    overrides: list[str] = OVERRIDES,
    preset: str | None = typer.Option(None, help="A named preset of the experiment file."),
    out: Path | None = EXP_DIR_OPTION,
    jobs: int = typer.Option(1, help="Runs trained in parallel local processes."),
    executor: str = typer.Option("local", help="local, or ray (a Ray cluster; RAY_ADDRESS)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and its time estimate."),
    reseed: int = RESEED,
) -> None:
    """Run an experiment: pretrain every variant x seed, transfer to the tasks, compare, report."""
    spec = _load_experiment(experiment, preset, overrides)
    _run_experiment(spec, out, jobs, executor, dry_run, reseed)


@app.command()
def results(
    exp_dir: Path = typer.Argument(..., help="An experiment directory."),
    format: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """Print an experiment's summary table (estimates with intervals and n)."""
    import csv
    import json

    from transferlab.report import print_summary

    summary_path = exp_dir / "summary.json"
    if not summary_path.is_file():
        _fail(f"{exp_dir} has no summary.json; run the experiment first")
    if format == "table":
        print_summary(exp_dir, console)
        return
    estimates = json.loads(summary_path.read_text())["estimates"]
    if format == "json":
        sys.stdout.write(json.dumps(estimates, indent=2) + "\n")
    elif format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(estimates[0]) if estimates else [])
        writer.writeheader()
        writer.writerows(estimates)
    else:
        _fail(f"--format {format!r} is unknown; use table, csv or json")


@app.command()
def report(exp_dir: Path = typer.Argument(..., help="An experiment directory.")) -> None:
    """(Re)write the experiment's self-contained HTML report (also while it is still running)."""
    from transferlab.report import write_report

    try:
        console.print(f"report: {write_report(exp_dir)}")
    except FileNotFoundError as exc:
        _fail(str(exc))


@recipes_app.command("list")
def recipes_list() -> None:
    """List the packaged recipes and the claims they test."""
    from transferlab.recipes import list_recipes

    for recipe in list_recipes():
        console.print(f"[bold]{recipe.name}[/]  presets: {', '.join(recipe.presets)}")
        console.print(f"  {recipe.claim}", highlight=False)


@recipes_app.command("show")
def recipes_show(name: str = typer.Argument(..., help="Recipe name.")) -> None:
    """Print a recipe's YAML."""
    from transferlab.recipes import recipe_path

    console.print(_recipe(recipe_path, name).read_text(), highlight=False, markup=False)


@recipes_app.command("run")
def recipes_run(
    name: str | None = typer.Argument(None, help="Recipe name (or --all)."),
    overrides: list[str] = OVERRIDES,
    preset: str = typer.Option("quick", help="quick (minutes) or full (up to an hour)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Experiment directory (default: experiments/NAME-PRESET); with --all, the folder "
        "that holds every recipe's NAME-PRESET and scoreboard/ (default: experiments).",
    ),
    jobs: int = typer.Option(2, help="Runs trained in parallel local processes."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and its time estimate."),
    reseed: int = RESEED,
    all_: bool = typer.Option(
        False, "--all", help="Run every recipe, then write the scoreboard (OUT/scoreboard)."
    ),
) -> None:
    """Run a recipe: a packaged experiment that tests one published claim; with --all, every
    recipe in turn (one that fails does not stop the others) and the scoreboard."""
    from transferlab.recipes import recipe_path

    if all_:
        if name is not None or overrides or dry_run:
            _fail(
                "--all runs every recipe as its preset says; drop the NAME, overrides and --dry-run"
            )
        _run_all(preset, out or Path("experiments"), jobs, reseed)
        return
    if name is None:
        _fail("give a recipe NAME (see `transferlab recipes list`) or --all")
    spec = _load_experiment(_recipe(recipe_path, name), preset, overrides)
    exp_dir = out or Path("experiments") / f"{name}-{preset}"
    _run_experiment(spec, exp_dir, jobs, "local", dry_run, reseed)


def _run_all(preset: str, root: Path, jobs: int, reseed: int) -> None:
    from transferlab.experiment.suite import run_suite
    from transferlab.recipes import list_recipes

    paths = [recipe.path for recipe in list_recipes()]
    try:
        dirs = run_suite(paths, preset, root, reseed=reseed, jobs=jobs, log=console.print)
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume where it stopped", code=130)
    _write_scoreboard(dirs, root / "scoreboard")


def _write_scoreboard(dirs: list[Path], out_dir: Path) -> None:
    from transferlab.report.scoreboard import write_scoreboard
    from transferlab.report.terminal import print_scoreboard

    page = write_scoreboard(dirs, out_dir)
    print_scoreboard(out_dir, console)
    console.print(f"scoreboard: {page}", highlight=False, soft_wrap=True)


@recipes_app.command("scoreboard")
def recipes_scoreboard(
    dirs: list[Path] = typer.Argument(
        None, help="Experiment directories (default: every one under experiments/)."
    ),
    out: Path = typer.Option(Path("experiments") / "scoreboard", "--out", help="Where to write."),
) -> None:
    """(Re)build the scoreboard from experiment directories that already ran; runs nothing."""
    from transferlab.experiment.suite import FAILURE_NAME

    if not dirs:
        found = sorted(Path("experiments").glob("*/"))
        done = ("summary.json", FAILURE_NAME)
        dirs = [d for d in found if any((d / name).is_file() for name in done)]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing or not dirs:
        _fail(f"no experiment directories to read: {missing or 'none found under experiments/'}")
    _write_scoreboard(dirs, out)


@app.command()
def quickstart(
    out: Path | None = EXP_DIR_OPTION,
    jobs: int = typer.Option(2, help="Runs trained in parallel local processes."),
) -> None:
    """The knowledge-augmentation recipe's quick preset: 2 variants x 3 seeds, minutes on a CPU."""
    from transferlab.recipes import QUICKSTART, recipe_path

    spec = _load_experiment(_recipe(recipe_path, QUICKSTART), "quick", [])
    _run_experiment(spec, out or Path("experiments") / "quickstart", jobs, "local", False)


def _recipe(recipe_path, name: str) -> Path:
    try:
        return recipe_path(name)
    except ValueError as exc:
        _fail(str(exc))


def _load_job(config: Path, overrides: list[str] | None):
    from transferlab.curation.job import load_job

    try:
        return load_job(config, overrides or [])
    except ConfigError as exc:
        _fail(str(exc))


@data_app.command("curate")
def data_curate(
    config: Path = typer.Argument(..., help="Curation job YAML: sources + curation."),
    overrides: list[str] = OVERRIDES,
    out: Path = typer.Option(..., "--out", help="Output directory (written atomically)."),
    force: bool = FORCE,
) -> None:
    """Filter and deduplicate the sources; write the kept documents, scores and statistics."""
    from transferlab.curation import print_report
    from transferlab.curation.pipeline import CURATION_KIND

    job = _load_job(config, overrides)
    _check_output(out, CURATION_KIND, force, [config, *_source_paths(job.to_dict())])
    try:
        result = job.curation.run(job.documents(), out)
    except ValueError as exc:
        _fail(str(exc))
    print_report(result.report, console, samples=False)
    console.print(f"curated: {result.documents_path}", highlight=False, soft_wrap=True)


def _source_paths(node: object) -> list[Path]:
    """The local files and folders a job's sources read (a pattern's matches), at any nesting."""
    import glob

    if isinstance(node, list):
        return [p for item in node for p in _source_paths(item)]
    if not isinstance(node, dict):
        return []
    found = [p for value in node.values() for p in _source_paths(value)]
    if isinstance(node.get("path"), str):
        found += [Path(p) for p in glob.glob(node["path"], recursive=True)] or [Path(node["path"])]
    return found


@data_app.command("inspect")
def data_inspect(
    directory: Path = typer.Argument(..., help="An output directory of `transferlab data curate`."),
    samples: bool = typer.Option(True, "--samples/--no-samples", help="Show removed documents."),
) -> None:
    """Per stage: documents removed and rewritten, words removed, the main reasons, and samples
    of removed and rewritten documents."""
    from transferlab.curation import inspect, print_report

    try:
        print_report(inspect(directory), console, samples=samples)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))


@data_app.command("stats")
def data_stats(
    config: Path | None = typer.Argument(None, help="Curation job YAML (its sources are read)."),
    curated: Path | None = typer.Option(None, help="Read a curated directory instead."),
    near_dups: bool = typer.Option(
        False, "--near-dups", help="Also count MinHash near-duplicates."
    ),
    tokenizer: Path | None = typer.Option(
        None, help="Count this tokenizer.json's tokens (a run directory holds one), not words."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Words per domain (tokens with --tokenizer), length histogram and duplicate rates."""
    import json

    from transferlab.curation import MinHashConfig, print_stats, read_documents, stats
    from transferlab.data.tokenizer import TextTokenizer

    if (config is None) == (curated is None):
        _fail("give either a curation job CONFIG or --curated DIR")
    documents = (
        read_documents(curated / "documents.jsonl.gz")
        if curated
        else _load_job(config, []).documents()
    )
    try:
        counter = TextTokenizer.from_file(tokenizer) if tokenizer else None
        result = stats(documents, minhash=MinHashConfig() if near_dups else None, tokenizer=counter)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        print_stats(result, console)


@app.command("config")
def show_config(
    config: Path | None = typer.Argument(None, help="Run config YAML (default: all defaults)."),
    overrides: list[str] = OVERRIDES,
) -> None:
    """Print the fully resolved run config (defaults and preset values filled in)."""
    cfg = _load_run_config(config, overrides)
    console.print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), highlight=False, end="")


@app.command()
def components() -> None:
    """List every registered component by kind (sources, filters, tasks, objectives, optimizers,
    schedules, model presets and parts, callbacks, measures, worlds), each with one line on what
    it is; `transferlab explain NAME` shows its options."""
    from transferlab.catalog import catalog, components_text

    for heading, rows in components_text(catalog()):
        console.print(f"[bold]{heading}[/]")
        width = max((len(name) for name, _ in rows), default=0)
        for name, text in rows:
            console.print(
                f"  {name:<{width}}  {text}", markup=False, highlight=False, soft_wrap=True
            )


@app.command()
def explain(
    name: str | None = typer.Argument(
        None,
        help="A component (jsonl, gopher_quality, qa_score ...), KIND/NAME when a name is "
        "ambiguous, or a config section (run.trainer, trainer, experiment.expect ...).",
    ),
    all_: bool = typer.Option(False, "--all", help="Every section and component."),
    markdown: bool = typer.Option(
        False, "--markdown", help="Markdown (with --all: docs/reference.md) instead of text."
    ),
) -> None:
    """Print the options of a component or a config section: type, default, constraint and
    what each does."""
    from transferlab.catalog import catalog, explain_text, find, reference_markdown

    entries = catalog()
    if (name is None) == (not all_):
        _fail("give a NAME or --all (not both)")
    if all_:
        if markdown:
            sys.stdout.write(reference_markdown(entries))
        else:
            sys.stdout.write("\n\n".join(explain_text(e, entries) for e in entries) + "\n")
        return
    try:
        entry = find(name, entries)
    except ValueError as exc:
        _fail(str(exc))
    sys.stdout.write(explain_text(entry, entries) + "\n")


_python_format_warning = warnings.formatwarning


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """transferlab's own warnings (data warnings, skipped documents, unknown tokens) speak to
    the user: one line, without the line of transferlab's source that issued them; any other
    library's warning keeps Python's format, whose location helps whoever reports it."""
    if category.__module__.startswith("transferlab."):
        return f"warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


def main() -> None:
    warnings.formatwarning = _format_warning
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
