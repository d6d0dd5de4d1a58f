"""Verdict stability: run an experiment again with K fresh, disjoint sets of training seeds and
count how often each expectation's verdict repeats.

The seed sets: with the spec's seeds S and the stride ``max(S) - min(S) + 1``, set k (k = 1 ..
K) is S shifted by ``k x stride``: seeds [0, 1, 2] give [3, 4, 5], [6, 7, 8], ...; seeds
[0, 10] give [11, 21], [22, 32]. Each set lies in its own window of ``stride`` seeds, so no seed
repeats across sets, and set k is the same whatever K, so a larger K extends a smaller one. Only
the training seeds change: the world, its examples and the tokenizer are shared, and runs
already in the cache are reused.

Set k runs as its own experiment in ``EXP_DIR/reseed-k``; the original runs in ``EXP_DIR``.
A set whose last completed invocation (``invocations.jsonl``) ran this very spec is finished
and skipped, so a killed reseeding resumes by running the same command again.

``stability.json`` holds, per expectation, the original verdict, each fresh set's verdict with
its effect and interval, how often the verdict repeats (the fraction of the K fresh sets with
the original's status, with its exact Clopper-Pearson interval, n = K) and the distribution of
the K fresh sets' statuses.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transferlab.analysis import clopper_pearson
from transferlab.artifacts import write_json_atomic
from transferlab.config import validate
from transferlab.experiment.invocations import last_invocation, spec_key
from transferlab.experiment.runner import run_experiment
from transferlab.experiment.spec import ExperimentSpec

STABILITY_NAME = "stability.json"
RESEED_PREFIX = "reseed-"
# What each seed set's verdict keeps: its status, and its effect with its interval and power.
_KEPT = ("status", "diff", "low", "high", "level", "mde80", "n_seeds", "n_examples")


def seed_stride(seeds: list[int]) -> int:
    """How far each fresh set is shifted from the previous one: the span of ``seeds``."""
    return max(seeds) - min(seeds) + 1


def fresh_seed_sets(seeds: list[int], k: int) -> list[list[int]]:
    """The K fresh seed sets of the module docstring, in order."""
    if k < 1:
        raise ValueError(f"--reseed needs at least 1 fresh seed set, got {k}")
    stride = seed_stride(seeds)
    return [[seed + i * stride for seed in seeds] for i in range(1, k + 1)]


def reseeded(spec: ExperimentSpec, seeds: list[int]) -> ExperimentSpec:
    """``spec`` with other training seeds, validated like any spec."""
    return validate(ExperimentSpec, {**spec.to_dict(), "seeds": seeds})


def is_finished(spec: ExperimentSpec, exp_dir: Path) -> bool:
    """Whether ``exp_dir``'s last completed invocation ran ``spec`` (and left its summary)."""
    last = last_invocation(exp_dir)
    summary = Path(exp_dir) / "summary.json"
    return last is not None and last.get("spec_key") == spec_key(spec) and summary.is_file()


def run_reseeded(
    spec: ExperimentSpec,
    exp_dir: Path,
    k: int,
    run: Callable[[ExperimentSpec, Path, str], dict[str, Any]],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``spec`` in ``exp_dir`` and with each of K fresh seed sets in ``exp_dir/reseed-k``
    (finished ones skipped), then write and return ``stability.json``. ``run(spec, dir,
    note)`` runs one seed set and returns its summary (``note`` names the set)."""
    sets = [(spec, Path(exp_dir), "original seeds")]
    for i, seeds in enumerate(fresh_seed_sets(spec.seeds, k), start=1):
        sets.append((reseeded(spec, seeds), Path(exp_dir) / f"{RESEED_PREFIX}{i}", f"set {i}"))
    summaries = []
    for set_spec, set_dir, note in sets:
        if is_finished(set_spec, set_dir):
            log(f"{note} (seeds {set_spec.seeds}): finished earlier in {set_dir}, reused")
            summaries.append(_read_summary(set_dir))
        else:
            log(f"{note} (seeds {set_spec.seeds}) -> {set_dir}")
            summaries.append(run(set_spec, set_dir, note))
    fresh = [
        (s.seeds, d.name, summary)
        for (s, d, _), summary in zip(sets[1:], summaries[1:], strict=True)
    ]
    stability = verdict_stability(spec.name, spec.seeds, summaries[0], fresh)
    write_json_atomic(Path(exp_dir) / STABILITY_NAME, stability)
    return stability


def run_set(jobs: int, executor: str, command: str, log: Callable[[str], None]) -> Callable:
    """A ``run`` for ``run_reseeded``: ``run_experiment`` with these settings, its plan's
    command marked with the seed set it ran."""

    def run(spec: ExperimentSpec, exp_dir: Path, note: str) -> dict[str, Any]:
        marked = f"{command}  # {note}: seeds {spec.seeds}"
        return run_experiment(spec, exp_dir, jobs, executor, marked, log).summary

    return run


def verdict_stability(
    name: str,
    seeds: list[int],
    original: dict[str, Any],
    fresh: list[tuple[list[int], str, dict[str, Any]]],
    level: float = 0.95,
) -> dict[str, Any]:
    """What ``stability.json`` holds, from the original summary and each fresh set's (its
    seeds, its folder's name, its summary); the expectations pair by their order."""
    expectations = []
    for i, verdict in enumerate(original.get("verdicts") or []):
        again = [
            (set_seeds, folder, summary["verdicts"][i]) for set_seeds, folder, summary in fresh
        ]
        statuses = [v["status"] for _, _, v in again]
        repeats = clopper_pearson(statuses.count(verdict["status"]), len(again), level)
        expectations.append(
            {
                "claim": verdict.get("claim", ""),
                "subject": expectation_subject(verdict),
                "expected": verdict.get("expected"),
                "original": _kept(verdict),
                "reseeds": [
                    {"seeds": set_seeds, "dir": folder, **_kept(v)}
                    for set_seeds, folder, v in again
                ],
                "repeats": asdict(repeats),
                "distribution": dict(Counter(statuses)),
            }
        )
    return {
        "experiment": name,
        "seeds": seeds,
        "stride": seed_stride(seeds),
        "k": len(fresh),
        "expectations": expectations,
    }


def expectation_subject(verdict: dict[str, Any]) -> str:
    """What a verdict judges, in words: ``augmented vs fixed on qa_finetune (correct)``, ``clm
    vs value 0.125 on reverse_mc (correct)``, ``muon vs adamw on measure steps_to_target``,
    ``decision by p_correct vs correct (s1) on qa_score``."""
    if verdict.get("decision") == "better":
        size = verdict.get("size") or "mean over smaller sizes"
        return f"decision by {verdict['metric']} vs {verdict['than']} ({size}) on {verdict['task']}"
    if verdict.get("decision") == "above_chance":
        return (
            f"decision by {verdict['metric']} at {verdict['size']} vs chance on {verdict['task']}"
        )
    variant = verdict.get("variant", "?")
    if "value" in verdict:
        other = f"value {verdict['value']:g}"
    else:
        other = str(verdict.get("reference", "?"))
    if verdict.get("measure") is not None:
        where = f"measure {verdict['measure']}"
    else:
        where = f"{verdict.get('task', '?')} ({verdict.get('metric', '?')})"
    return f"{variant} vs {other} on {where}"


def _kept(verdict: dict[str, Any]) -> dict[str, Any]:
    return {key: verdict[key] for key in _KEPT if key in verdict}


def _read_summary(exp_dir: Path) -> dict[str, Any]:
    return json.loads((Path(exp_dir) / "summary.json").read_text())
