"""Execute a plan: train every unfinished run, evaluate it on every task, and keep going after an
interruption from where it stopped. Jobs (one run with its evaluations) run in this process, in a
pool of local processes, or as Ray tasks on a cluster."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from transferlab.artifacts import atomic_dir
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.results import check_rows
from transferlab.experiment.planner import Plan, PlannedEval, PlannedRun
from transferlab.train import load_run, train

Log = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """One pretraining run and the evaluations of it that are still to do."""

    run: PlannedRun
    evals: tuple[PlannedEval, ...]
    threads: int | None = None  # torch intra-op threads inside a worker process
    progress: bool = True


def pending_jobs(plan: Plan, threads: int | None = None, progress: bool = True) -> list[Job]:
    jobs = []
    for run in plan.runs:
        evals = tuple(e for e in plan.evals_of(run) if e.status() != "done")
        if run.status() != "done" or evals:
            jobs.append(Job(run, evals, threads, progress))
    return jobs


def run_job(job: Job) -> str:
    """Train (or resume) the run if unfinished, then write each missing evaluation atomically."""
    if job.threads:
        torch.set_num_threads(job.threads)
    run = job.run
    status = run.status()
    if status != "done":
        cfg = run.config
        if not job.progress:
            cfg = cfg.model_copy(
                update={"trainer": cfg.trainer.model_copy(update={"progress": False})}
            )
        result = train(cfg, resume=status == "partial")
        if result.interrupted:
            raise KeyboardInterrupt(f"run {run.key} interrupted at step {result.steps}")
    if job.evals:
        loaded = load_run(run.run_dir)
        tokenizer = TextTokenizer.from_file(loaded.tokenizer_path)
        uses_world = any(planned.task.uses_world for planned in job.evals)
        world = loaded.config.world.build() if uses_world else None
        for planned in job.evals:
            rows = planned.task.build().run(loaded.model, tokenizer, world, run.key, run.seed)
            check_rows(planned.task, rows)  # before caching: a bad row must not be reused
            with atomic_dir(planned.out_dir) as tmp:
                pq.write_table(pa.Table.from_pylist(rows), tmp / "rows.parquet")
    return run.key


def execute(plan: Plan, jobs: int = 1, executor: str = "local", log: Log = print) -> None:
    """Run every pending job. ``jobs`` > 1 runs that many in parallel local processes, each with
    an equal share of the CPU cores; ``executor="ray"`` submits each job as a Ray task."""
    todo = pending_jobs(plan)
    if not todo:
        log("every stage is finished; nothing to run")
        return
    if executor == "ray":
        _execute_ray(todo, log)
    elif jobs <= 1:
        for i, job in enumerate(todo, 1):
            log(f"[{i}/{len(todo)}] {job.run.variant} seed {job.run.seed} ({job.run.key})")
            run_job(job)
    else:
        _execute_pool(todo, jobs, log)


def _execute_pool(todo: list[Job], jobs: int, log: Log) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    quiet = [Job(j.run, j.evals, threads, progress=False) for j in todo]
    # spawn, not fork: torch's thread pools do not survive a fork.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job): job for job in quiet}
        for done, future in enumerate(as_completed(futures), 1):
            job = futures[future]
            future.result()
            log(f"[{done}/{len(todo)}] finished {job.run.variant} seed {job.run.seed}")


def _execute_ray(todo: list[Job], log: Log) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("executor 'ray' needs ray: pip install 'transferlab[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"))
    remote = ray.remote(num_cpus=1)(run_job)
    refs = {remote.remote(Job(j.run, j.evals, None, progress=False)): j for j in todo}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        job = refs[ready[0]]
        ray.get(ready[0])
        log(f"finished {job.run.variant} seed {job.run.seed} on ray")
