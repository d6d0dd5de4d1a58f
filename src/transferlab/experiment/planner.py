"""Turn an experiment spec into a graph of stages: per (variant, seed) a chain of runs, one per
declared stage, each initialized from the previous one (its parent), and one evaluation per
(task, the run of the task's stage). Each stage is content-addressed (a child by its config and
its parent's key), so finished stages are found and reused, and two variants or experiments that
share a stage share its artifact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from transferlab.artifacts import cache_root, content_key, is_complete
from transferlab.config import ConfigError, RunConfig, TaskConfig, set_dotted, validate
from transferlab.evaluate.readers import reading_error
from transferlab.experiment.spec import IMPLICIT_STAGE, ExperimentSpec, StageSpec
from transferlab.file_digests import files_fingerprint
from transferlab.train.checkpoint import checkpoint_step, latest_checkpoint
from transferlab.train.run_dir import config_key, diverged_step
from transferlab.train.trainer import check_param_groups

EVAL_FORMAT_VERSION = (
    3  # 3: qa_score draws no <unk> distractors  # 2: rows hold their task's declared metrics only
)
Status = Literal["done", "partial", "todo"]
NOTES_FILE = "notes.json"  # an evaluation's notes, beside its rows


@dataclass(frozen=True)
class PlannedRun:
    variant: str
    seed: int
    config: RunConfig
    key: str
    stage: str = IMPLICIT_STAGE
    parent: str | None = None  # key of the run this one is initialized from (previous stage)
    size: str | None = None  # its size on the spec's ladder (None: a spec without sizes)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.trainer.out_dir) / self.config.name

    def status(self) -> Status:
        """done: trained to ``max_steps``, or diverged and stopped (``on_divergence: stop``),
        which is as finished as that run can be; partial: a checkpoint before that; todo."""
        if diverged_step(self.run_dir) is not None:
            return "done"
        latest = latest_checkpoint(self.run_dir)
        if latest is None:
            return "todo"
        return "done" if checkpoint_step(latest) >= self.config.trainer.max_steps else "partial"


@dataclass(frozen=True)
class PlannedEval:
    run: PlannedRun
    task: TaskConfig
    key: str
    out_dir: Path

    @property
    def rows_path(self) -> Path:
        return self.out_dir / "rows.parquet"

    @property
    def notes_path(self) -> Path:
        """The task's notes on the evaluation as a whole (``evaluate.TaskNote``s); absent when
        it noted nothing."""
        return self.out_dir / NOTES_FILE

    @property
    def work_dir(self) -> Path:
        """Where the evaluation keeps what lets it resume (a fine-tuning's checkpoints)."""
        return self.out_dir.with_name(self.out_dir.name + ".work")

    def status(self) -> Status:
        return "done" if is_complete(self.out_dir) else "todo"


@dataclass(frozen=True)
class Plan:
    """Runs in dependency order (a run's parent comes before it); runs of different variants
    that share a stage share its key, and so its run directory and evaluations."""

    spec: ExperimentSpec
    runs: list[PlannedRun]
    evals: list[PlannedEval]

    def evals_of(self, run: PlannedRun) -> list[PlannedEval]:
        return [e for e in self.evals if e.run.key == run.key]


def run_key(cfg: RunConfig, parent_key: str | None = None) -> str:
    """The key of an experiment's run: ``config_key`` and ``trainer.max_steps``.

    ``config_key`` leaves max_steps out so that ``transferlab train --resume`` may extend a
    run; an experiment keeps it in, because its results must follow from its file, not from
    what the cache holds. Keyed without it, a shorter budget reused a run trained longer (and
    was evaluated on weights of more steps than it asked for), and a longer one continued a
    shorter run, whose schedule (a cosine decayed to its own end) is not a fresh run's."""
    return content_key(config_key(cfg, parent_key), {"max_steps": cfg.trainer.max_steps})


def stage_config(
    data: dict[str, Any],
    overrides: dict[str, Any],
    parent: PlannedRun | None,
    store: Path,
) -> RunConfig:
    """The run config of one stage: ``data`` (a run config dict) plus ``overrides``, started
    from ``parent``'s checkpoint when given, and named by its content key inside ``store``
    (``run_key``)."""
    data = set_dotted(data, overrides)
    if parent is not None:
        data["init"] = {**data["init"], "from_run": str(parent.run_dir)}
    try:
        cfg = validate(RunConfig, data)
        check_param_groups(cfg)
    except ConfigError as exc:
        raise ConfigError(f"base + variant overrides {overrides}: {exc}") from None
    key = run_key(cfg, parent.key if parent else None)
    trainer = cfg.trainer.model_copy(update={"out_dir": str(store / "runs")})
    return cfg.model_copy(update={"name": key, "trainer": trainer})


def plan_experiment(spec: ExperimentSpec, store: Path | None = None) -> Plan:
    """Every (size, variant, seed) chain of runs and their evaluations, sizes outermost."""
    plan = _plan(spec, store or cache_root())
    _check_shared_tokenizers(plan.runs)
    return plan


def _plan(spec: ExperimentSpec, store: Path) -> Plan:
    runs, evals = [], []
    for size, sized in spec.size_ladder().items():
        for variant, overrides in spec.variants().items():
            by_stage = spec.stage_overrides({**sized, **overrides})
            for seed in spec.seeds:
                chain = _plan_chain(spec, (variant, seed, size), by_stage, store)
                _check_stops(spec, variant, chain)
                runs += chain.values()
                evals += _plan_evals(spec, variant, chain, store)
    return Plan(spec=spec, runs=runs, evals=evals)


def _plan_evals(
    spec: ExperimentSpec, variant: str, chain: dict[str, PlannedRun], store: Path
) -> list[PlannedEval]:
    evals = []
    for task in spec.tasks:
        run = chain[spec.task_stage(task)]
        _check_readings([task], variant, run.config)
        _check_world(task, variant, _lineage(chain, spec.task_stage(task)))
        key = eval_key(run.key, task)
        evals.append(PlannedEval(run, task, key, store / "evals" / key))
    return evals


def eval_key(run_key: str, task: TaskConfig) -> str:
    """The content key of ``task``'s evaluation of the run keyed ``run_key``: the run key, the
    task config and, for a task on user files, what those files hold (``input_files``), so an
    edited file is evaluated again rather than read from the rows of its old content."""
    # The run key already says which stage is read; the task's ``stage`` does not enter the
    # key, so evaluations of specs without stages keep their keys.
    task_key = {k: v for k, v in task.to_dict().items() if k != "stage"}
    files = files_fingerprint(task.input_files())
    if not files:  # tasks on no user files keep the keys they had before files were keyed
        return content_key(run_key, task_key, EVAL_FORMAT_VERSION)
    return content_key(run_key, task_key, EVAL_FORMAT_VERSION, files)


def _check_shared_tokenizers(runs: list[PlannedRun]) -> None:
    """Refuse ``data.tokenizer_scope: shared`` runs of one stage whose ``data.sources`` differ:
    each list trains its own tokenizer, so the variants would not share one as asked. A later
    stage reads its parent's tokenizer, so only first stages train one."""
    first: dict[str, PlannedRun] = {}
    for run in runs:
        if run.config.data.tokenizer_scope != "shared" or run.parent is not None:
            continue
        other = first.setdefault(run.stage, run)
        if _source_dicts(run) != _source_dicts(other):
            raise ConfigError(
                f"data.tokenizer_scope: shared, but variants {other.variant!r} and "
                f"{run.variant!r} (stage {run.stage}) list different data.sources, so they "
                "cannot share a tokenizer; give every variant the same sources and leave a "
                "domain out with mixture weight 0"
            )


def _source_dicts(run: PlannedRun) -> list[dict[str, Any]]:
    return [s.to_dict() for s in run.config.data.sources]


def _check_readings(tasks: list[TaskConfig], variant: str, cfg: RunConfig) -> None:
    """Refuse, before anything is trained, a task that cannot read how the variant's objective
    trains its model (a generating task on a bidirectional model, say)."""
    objective = cfg.objective
    subject = f"run variant {variant!r}: its objective {objective.name!r} trains"
    for task in tasks:
        problem = reading_error(task, objective.reading, subject)
        if problem:
            raise ConfigError(problem)


def _check_stops(spec: ExperimentSpec, variant: str, chain: dict[str, PlannedRun]) -> None:
    """Refuse a run that may end where it diverges (``trainer.on_divergence: stop``) when
    anything but the measures reads its final model: a task, transfer curves or a later stage.
    A diverged run has no final model, and leaving its evaluations out would compare the
    variants on the seeds that happened not to diverge."""
    stages = list(chain)
    for i, (stage, run) in enumerate(chain.items()):
        reader = _final_model_reader(spec, stage, run, stages[i + 1 : i + 2])
        if run.config.trainer.on_divergence == "stop" and reader is not None:
            raise ConfigError(
                f"run variant {variant!r} (stage {stage}) sets trainer.on_divergence: stop, but "
                f"{reader}, and a diverged run has no final model; use on_divergence: raise, or "
                "read such runs with measures only (tasks: [], measures: ...)"
            )


def _final_model_reader(
    spec: ExperimentSpec, stage: str, run: PlannedRun, next_stage: list[str]
) -> str | None:
    """What reads the final model of ``run`` (of ``stage``), in words; None: only measures."""
    if next_stage:
        return f"stage {next_stage[0]!r} starts from it"
    if any(spec.task_stage(task) == stage for task in spec.tasks):
        return "a task evaluates it"
    if any(callback.name == "downstream" for callback in run.config.trainer.callbacks):
        return "its downstream callback (transfer curves) evaluates it"
    return None


def trains_on_world(cfg: RunConfig) -> bool:
    """Whether ``cfg`` pretrains on its world's corpus (not on data.sources or data.path)."""
    return not cfg.data.sources and cfg.data.path is None


def _lineage(chain: dict[str, PlannedRun], stage: str) -> list[PlannedRun]:
    """The runs of ``chain`` up to and including ``stage``'s (its ancestors and itself)."""
    runs = list(chain.values())
    return runs[: list(chain).index(stage) + 1]


def _check_world(task: TaskConfig, variant: str, lineage: list[PlannedRun]) -> None:
    """Refuse a task that asks about a world when no run it reads learned that world: it would
    score the run on a world (the config's default one) it never saw; and one that cannot ask
    about the run's world (``TaskConfig.check_world``: populations it does not have)."""
    if not task.uses_world:
        return
    world = lineage[-1].config.world
    if not any(trains_on_world(run.config) for run in lineage):
        raise ConfigError(
            f"task {task.task_name!r} asks about the {world.name!r} world, but run variant "
            f"{variant!r} (stage {lineage[-1].stage}) pretrains on data.sources/data.path, not on "
            "that world; drop the task or pretrain a stage on the world (no data.sources)"
        )
    try:
        task.check_world(world)
    except ValueError as exc:
        raise ConfigError(f"task {task.task_name!r} on run variant {variant!r}: {exc}") from None


def _plan_chain(
    spec: ExperimentSpec,
    identity: tuple[str, int, str | None],
    by_stage: dict[str, dict[str, Any]],
    store: Path,
) -> dict[str, PlannedRun]:
    """The runs of one (variant, seed, size), stage by stage, each from the previous one."""
    variant, seed, size = identity
    chain: dict[str, PlannedRun] = {}
    data: dict[str, Any] = {**spec.base, "seed": seed, "name": "run"}
    parent: PlannedRun | None = None
    for stage in spec.stage_list():
        overrides = {**stage.overrides, **by_stage[stage.name]}
        if parent is not None:
            data = {**data, "init": _stage_init(stage, parent)}
        try:
            cfg = stage_config(data, overrides, parent, store)
            if stage.name == spec.curves_stage:
                cfg = _with_curves(spec, variant, data, overrides, cfg, parent, store)
        except ConfigError as exc:
            if not spec.stages:
                raise
            raise ConfigError(f"stage {stage.name}: {exc}") from None
        data = set_dotted(data, overrides)
        parent_key = parent.key if parent else None
        run = PlannedRun(variant, seed, cfg, cfg.name, stage.name, parent_key, size)
        chain[stage.name] = parent = run
    return chain


def _with_curves(
    spec: ExperimentSpec,
    variant: str,
    data: dict[str, Any],
    overrides: dict[str, Any],
    cfg: RunConfig,
    parent: PlannedRun | None,
    store: Path,
) -> RunConfig:
    """``cfg`` with the ``downstream`` callback that records the spec's transfer curves (only
    in this stage's config: later stages do not inherit it)."""
    tasks = spec.curve_tasks()
    _check_readings(tasks, variant, cfg)
    curves = {
        "name": "downstream",
        "every": spec.curves.every,
        "tasks": [task.to_dict() for task in tasks],
    }
    callbacks = [*(c.to_dict() for c in cfg.trainer.callbacks), curves]
    changed = {**overrides, "trainer.callbacks": callbacks}
    return stage_config(data, changed, parent, store)


def _stage_init(stage: StageSpec, parent: PlannedRun) -> dict[str, Any]:
    """``init`` of a stage: a checkpoint its parent keeps (default: the final one)."""
    t = parent.config.trainer
    written = {*range(t.checkpoint_interval, t.max_steps + 1, t.checkpoint_interval), t.max_steps}
    kept = sorted(written)[-t.keep_checkpoints :]
    step = t.max_steps if stage.init.step is None else stage.init.step
    if step not in kept:
        raise ConfigError(
            f"stages.{stage.name}.init.step: the previous stage keeps the checkpoints of steps "
            f"{kept}; choose one of them or raise its trainer.keep_checkpoints"
        )
    return {"step": step, "optimizer": stage.init.optimizer}
