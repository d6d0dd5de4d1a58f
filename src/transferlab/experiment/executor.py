"""Execute a plan: train every unfinished run, evaluate it on every task, and keep going after an
interruption from where it stopped. Jobs (one run with its evaluations) run in this process, in a
pool of local processes, or as Ray tasks on a cluster; a job starts only once the job of its
parent run (the previous stage) has finished, since it starts from that run's checkpoint.

Processes may share one cache (two `transferlab run` at once, or a pool beside another run):
each run's training and each evaluation holds its stage's lock, and looks again whether it is
still to do once it has it, so every stage is computed once and the others wait for it."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from transferlab.artifacts import CorruptArtifact, atomic_dir, cache_root, stage_lock
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import TaskNote
from transferlab.evaluate.results import check_rows
from transferlab.experiment.planner import NOTES_FILE, Plan, PlannedEval, PlannedRun
from transferlab.train import LoadedRun, load_run, train

Log = Callable[[str], None]
log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


def check_execution(executor: str, jobs: int) -> None:
    """A one-line ValueError for an executor or job count that cannot run (before any work)."""
    if executor not in EXECUTORS:
        raise ValueError(f"--executor {executor!r} is unknown; use one of {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: expected at least 1 (runs trained in parallel)")


@dataclass(frozen=True)
class Job:
    """One pretraining run and the evaluations of it that are still to do."""

    run: PlannedRun
    evals: tuple[PlannedEval, ...]
    threads: int | None = None  # torch intra-op threads inside a worker process
    progress: bool = True


def pending_jobs(plan: Plan, threads: int | None = None, progress: bool = True) -> list[Job]:
    """One job per distinct run still to train or evaluate, parents before children (the plan's
    order); variants that share a stage share its job."""
    jobs: dict[str, Job] = {}
    for run in plan.runs:
        if run.key in jobs:
            continue
        evals = {e.key: e for e in plan.evals_of(run) if e.status() != "done"}
        if run.status() != "done" or evals:
            jobs[run.key] = Job(run, tuple(evals.values()), threads, progress)
    return list(jobs.values())


def run_job(job: Job) -> str:
    """Train (or resume) the run if unfinished, then write each missing evaluation atomically."""
    if job.threads:
        torch.set_num_threads(job.threads)
    run = job.run
    with stage_lock(run.run_dir):
        status = run.status()  # again under the lock: another process may have trained it
        if status != "done":
            _train(job, resume=status == "partial")
    if job.evals:
        loaded = _final_model(job)
        tokenizer = TextTokenizer.from_file(loaded.tokenizer_path)
        uses_world = any(planned.task.uses_world for planned in job.evals)
        world = loaded.config.world.build() if uses_world else None
        for planned in job.evals:
            with stage_lock(planned.out_dir):
                if planned.status() == "done":
                    continue
                task = planned.task.build()
                task.work_dir = planned.work_dir
                reading = loaded.config.objective.reading  # read as its objective trained it
                rows = task.run(
                    loaded.model, tokenizer, world, run.key, run.seed, reading, run.run_dir
                )
                check_rows(planned.task, rows)  # before caching: a bad row must not be reused
                _write_eval(planned, rows, task.notes)
    return run.key


def _train(job: Job, resume: bool) -> None:
    cfg = job.run.config
    if not job.progress:
        cfg = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"progress": False})})
    # The plan keys runs without the resumable trainer fields but max_steps (planner.run_key):
    # a quiet worker, another device or micro batch size continues the cached run.
    result = train(cfg, resume=resume, allow_changes=True)
    if result.interrupted:
        raise KeyboardInterrupt(f"run {job.run.key} interrupted at step {result.steps}")


def _final_model(job: Job) -> LoadedRun:
    """The run's final model; a final checkpoint that does not load is trained again from the
    newest earlier one that does (resuming sets the corrupt one aside)."""
    try:
        return load_run(job.run.run_dir)
    except CorruptArtifact as exc:
        log.warning("%s; training the run again from the checkpoint before it", exc)
    with stage_lock(job.run.run_dir):
        _train(job, resume=True)
    return load_run(job.run.run_dir)


def _write_eval(planned: PlannedEval, rows: list[dict], notes: list[TaskNote]) -> None:
    """The evaluation's rows and notes (and its fine-tuning metrics, if it trained), written
    complete or not at all; the work directory that let a killed evaluation resume goes
    afterwards."""
    finetune_metrics = planned.work_dir / "finetune" / "metrics.jsonl"
    with atomic_dir(planned.out_dir) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp / "rows.parquet")
        if notes:
            (tmp / NOTES_FILE).write_text(json.dumps([asdict(note) for note in notes], indent=2))
        if finetune_metrics.is_file():
            shutil.copyfile(finetune_metrics, tmp / "finetune_metrics.jsonl")
    shutil.rmtree(planned.work_dir, ignore_errors=True)


def execute(plan: Plan, jobs: int = 1, executor: str = "local", log: Log = print) -> None:
    """Run every pending job. ``jobs`` > 1 runs that many in parallel local processes, each with
    an equal share of the CPU cores; ``executor="ray"`` submits each job as a Ray task."""
    check_execution(executor, jobs)
    todo = pending_jobs(plan)
    if not todo:
        log("every stage is finished; nothing to run")
        return
    if executor == "ray":
        _execute_ray(todo, log)
    elif jobs <= 1:
        for i, job in enumerate(todo, 1):  # in plan order: parents first
            log(f"[{i}/{len(todo)}] {_label(job)} ({job.run.key})")
            run_job(job)
    else:
        _execute_pool(todo, jobs, log)


def _label(job: Job) -> str:
    size = f" size {job.run.size}" if job.run.size is not None else ""
    return f"{job.run.variant}{size} seed {job.run.seed} stage {job.run.stage}"


def _run_graph(
    todo: list[Job],
    submit: Callable[[Job], Hashable],
    wait_any: Callable[[list[Hashable]], list[Hashable]],
    log: Log,
    where: str = "",
) -> None:
    """Submit each job once its parent's job has finished; ``wait_any`` blocks until some
    submitted jobs end and returns their handles (raising the first failure)."""
    unfinished = {job.run.key for job in todo}
    waiting, running = list(todo), {}
    finished = 0
    while waiting or running:
        ready = [job for job in waiting if job.run.parent not in unfinished]
        waiting = [job for job in waiting if job.run.parent in unfinished]
        for job in ready:
            running[submit(job)] = job
        for handle in wait_any(list(running)):
            job = running.pop(handle)
            unfinished.discard(job.run.key)
            finished += 1
            log(f"[{finished}/{len(todo)}] finished {_label(job)}{where}")


def _execute_pool(todo: list[Job], jobs: int, log: Log) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    quiet = [Job(j.run, j.evals, threads, progress=False) for j in todo]

    def wait_any(futures: list[Hashable]) -> list[Hashable]:
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        for future in done:
            future.result()
        return list(done)

    # spawn, not fork: torch's thread pools do not survive a fork.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        _run_graph(quiet, lambda job: pool.submit(run_job, job), wait_any, log)


def ray_task_resources(cluster: dict[str, float]) -> dict[str, float]:
    """What each run's Ray task asks for: one CPU, and one GPU on a cluster that has GPUs (Ray
    then sets the task's CUDA_VISIBLE_DEVICES to that GPU, so ``trainer.device: auto`` trains on
    it and no two runs share one)."""
    return {"num_cpus": 1, "num_gpus": 1 if cluster.get("GPU", 0) >= 1 else 0}


def _connect_ray(ray: ModuleType) -> None:
    """Join the cluster at RAY_ADDRESS (none: start a local one), or a one-line ValueError."""
    address = os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=address)
    except (ConnectionError, ray.exceptions.AuthenticationError) as exc:
        # Ray's own message names neither the variable nor its token authentication, which a
        # `ray start` node turns on by itself where ~/.ray/auth_token exists.
        raise ValueError(
            f"executor 'ray': cannot join the Ray cluster at RAY_ADDRESS={address} ({exc}); "
            "check that it runs (ray status --address ...), and for a cluster with token "
            "authentication set RAY_AUTH_MODE=token and its token (~/.ray/auth_token or "
            "RAY_AUTH_TOKEN) here too"
        ) from None


def _execute_ray(todo: list[Job], log: Log) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("executor 'ray' needs ray: pip install 'transferlab[ray]'") from None
    if not ray.is_initialized():
        _connect_ray(ray)
    remote = ray.remote(run_job).options(
        **ray_task_resources(ray.cluster_resources()),
        # A worker inherits the environment of its node's `ray start`, not the driver's: without
        # this it would prepare data and tokenizers in its own cache, beside the plan's runs.
        runtime_env={"env_vars": {"TRANSFERLAB_CACHE": str(cache_root().absolute())}},
    )

    def wait_any(refs: list[Hashable]) -> list[Hashable]:
        ready, _ = ray.wait(refs, num_returns=1)
        ray.get(ready)
        return ready

    quiet = [Job(j.run, j.evals, None, progress=False) for j in todo]
    _run_graph(quiet, lambda job: remote.remote(job), wait_any, log, where=" on ray")
