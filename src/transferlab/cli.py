"""The ``transferlab`` command line: world building, training and Hugging Face export."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
import yaml
from rich.console import Console

from transferlab.config import ConfigError, RunConfig, load_config
from transferlab.config.registry import MODEL_PRESETS, OBJECTIVES, OPTIMIZERS, SCHEDULES, WORLDS

app = typer.Typer(
    help="Pretrain variants, transfer them to downstream tasks, compare them with statistics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
world_app = typer.Typer(help="Synthetic worlds: corpora and tasks with known answers.")
app.add_typer(world_app, name="world")
console = Console()
err_console = Console(stderr=True)

OVERRIDES = typer.Argument(
    None, help="Dotted overrides, e.g. model.d_model=128 trainer.max_steps=50"
)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


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
) -> None:
    """Pretrain one run: world -> tokenizer -> packed data -> model, with checkpoints."""
    from transferlab.train import TrainingDiverged
    from transferlab.train import train as run_training

    cfg = _load_run_config(config, overrides)
    try:
        result = run_training(cfg, resume=resume)
    except TrainingDiverged as exc:
        _fail(str(exc), code=1)
    except (ConfigError, ValueError, FileExistsError, FileNotFoundError) as exc:
        _fail(str(exc))
    if result.interrupted:
        console.print(f"interrupted at step {result.steps}; continue with --resume")
    console.print(f"run: {result.run_dir}")


@app.command("export-hf")
def export_hf(
    run_dir: Path = typer.Argument(..., help="A run directory written by `transferlab train`."),
    out_dir: Path = typer.Argument(..., help="Where to write the Hugging Face model."),
    step: int | None = typer.Option(None, help="Checkpoint step (default: the latest)."),
) -> None:
    """Export a causal run as a transformers model (LlamaForCausalLM) plus its tokenizer."""
    from transferlab.models.hf_export import export_llama
    from transferlab.train.checkpoint import load_run

    try:
        loaded = load_run(run_dir, step=step)
        if loaded.config.objective.name != "clm":
            _fail(
                f"run {run_dir} was trained with {loaded.config.objective.name!r}; "
                "only causal (clm) runs export as LlamaForCausalLM"
            )
        path = export_llama(loaded.model, loaded.tokenizer_path, out_dir)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(f"exported: {path}")


@world_app.command("build")
def world_build(
    config: Path = typer.Argument(..., help="Run config YAML; its `world` section is built."),
    overrides: list[str] = OVERRIDES,
    out: Path | None = typer.Option(None, help="Output directory (default: worlds/NAME-KEY)."),
) -> None:
    """Write a world's corpus, QA items, people split and ground-truth table."""
    from transferlab.artifacts import content_key
    from transferlab.worlds import build_world

    cfg = _load_run_config(config, overrides)
    out = out or Path("worlds") / f"{cfg.world.name}-{content_key(cfg.world.to_dict())}"
    path = build_world(cfg.world, out)
    console.print(f"world: {path}")


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
    """List the registered components (worlds, objectives, optimizers, schedules, model presets)."""
    for registry in (WORLDS, OBJECTIVES, OPTIMIZERS, SCHEDULES, MODEL_PRESETS):
        console.print(f"[bold]{registry.kind}s[/]: {', '.join(registry.names())}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
