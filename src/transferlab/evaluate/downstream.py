"""Downstream evaluation during training: transfer curves over pretraining.

``trainer.callbacks: [{name: downstream, every: 100, tasks: [{name: qa_score}]}]`` runs each
task on the current weights every ``every`` steps and at the last step, reading the model as the
run's objective trained it. Each evaluation's per-example rows, with a ``step`` column, are
written to ``RUN_DIR/downstream/step_XXXXXXXX/<task>.parquet`` (atomically: a file there is
complete), which experiments collect into transfer curves. Only rank 0 evaluates; the others wait.

It lives with the tasks (not in ``train``) because a trainer never imports an evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from transferlab.artifacts import write_parquet_atomic
from transferlab.config.registry import CALLBACKS, TASKS
from transferlab.config.schemas import CallbackConfig, RunConfig, TaskConfig
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.readers import reading_error
from transferlab.objectives.networks import transferred_model
from transferlab.train.checkpoint import read_run_config
from transferlab.train.engine import Callback, Engine, StepOutput

DOWNSTREAM_DIR = "downstream"


@CALLBACKS.register("downstream")
class DownstreamConfig(CallbackConfig):
    name: Literal["downstream"] = "downstream"
    every: int = Field(default=100, gt=0)  # evaluate every this many steps (and at the last)
    tasks: list[TASKS.type(TaskConfig, default="qa_score")] = Field(min_length=1)  # run each time

    @model_validator(mode="after")
    def _distinct_task_names(self) -> DownstreamConfig:
        names = [task.task_name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"downstream tasks {names} repeat a name; give each a label")
        return self

    def check(self, run: RunConfig) -> None:
        """Refuse, when the run config is validated, a task that cannot read the model as the
        run's objective trains it (rather than fail at the first evaluation, mid-training)."""
        subject = f"this run: its objective {run.objective.name!r} trains"
        for task in self.tasks:
            problem = reading_error(task, run.objective.reading, subject)
            if problem:
                raise ValueError(f"downstream callback: {problem}")

    def steps(self, max_steps: int) -> list[int]:
        """The steps a run of ``max_steps`` evaluates at: every ``every``-th and the last."""
        return sorted({*range(self.every, max_steps + 1, self.every), max_steps})

    def build(self) -> DownstreamCallback:
        return DownstreamCallback(self)


def downstream_path(run_dir: Path, step: int, task_name: str) -> Path:
    return Path(run_dir) / DOWNSTREAM_DIR / f"step_{step:08d}" / f"{task_name}.parquet"


def read_downstream(run_dir: Path) -> list[dict[str, Any]]:
    """Every row the downstream callback wrote for ``run_dir``, oldest step first."""
    root = Path(run_dir) / DOWNSTREAM_DIR
    if not root.is_dir():
        return []
    rows: list[dict[str, Any]] = []
    for path in sorted(root.glob("step_*/*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


class DownstreamCallback(Callback):
    name = "downstream"
    main_process_only = True

    def __init__(self, cfg: DownstreamConfig) -> None:
        self.cfg = cfg
        self._context: tuple[TextTokenizer, Any, Any] | None = None
        self._steps: set[int] = set()

    def on_train_start(self, engine: Engine) -> None:
        if engine.run_dir is None:
            raise ValueError("the downstream callback needs a run directory to write its rows")
        self._steps = set(self.cfg.steps(engine.max_steps))

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if engine.step not in self._steps:
            return
        if engine.dist.is_main:
            was_training = engine.model.training
            engine.model.eval()
            try:
                self._evaluate(engine)
            finally:
                engine.model.train(was_training)
        engine.dist.barrier()

    def _evaluate(self, engine: Engine) -> None:
        tokenizer, cfg, world = self._load_context(engine.run_dir)
        for task_cfg in self.cfg.tasks:
            task = task_cfg.build()
            rows = task.run(
                transferred_model(engine.model),  # not the objective's own networks
                tokenizer,
                world,
                cfg.name,
                cfg.seed,
                cfg.objective.reading,
                engine.run_dir,
            )
            path = downstream_path(engine.run_dir, engine.step, task_cfg.task_name)
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pylist([{**row, "step": engine.step} for row in rows])
            write_parquet_atomic(table, path)  # a file there is complete

    def _load_context(self, run_dir: Path) -> tuple[TextTokenizer, Any, Any]:
        """The run's tokenizer, config and world (built once per training call)."""
        if self._context is None:
            cfg = read_run_config(run_dir)
            uses_world = any(task.uses_world for task in self.cfg.tasks)
            world = cfg.world.build() if uses_world else None
            self._context = (TextTokenizer.from_file(Path(run_dir) / "tokenizer.json"), cfg, world)
        return self._context
