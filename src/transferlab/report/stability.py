"""What the report shows about training stability, from what the runs recorded themselves.

- Attention-logit growth: the largest attention logit (``attn_logit_max``, which the
  ``stability`` training callback writes to each run's metrics.jsonl every ``every`` steps)
  against the step, per variant, as a band over its seeds. Logits that keep growing precede
  attention-entropy collapse (Wortsman et al. 2023); QK-norm keeps them bounded.
- Final validation loss against the learning rate, when an axis of the experiment sweeps the
  learning rate: one line per level of the other axes (qk-norm on/off, say), each point the
  band over seeds of the runs' ``final_val_loss`` at that ``lr`` (both columns of
  results/runs.parquet). A flatter line is a variant less sensitive to the learning rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transferlab.experiment.spec import variant_levels
from transferlab.report.formatting import is_number
from transferlab.report.series import SeedBand, seed_band

LOGIT_KEY = "attn_logit_max"  # per step, in metrics.jsonl (``series.variant_bands`` reads it)
ALL_RUNS = "all runs"  # the one line of an experiment whose only axis is the learning rate


@dataclass(frozen=True)
class LrSweep:
    axis: str  # the axis that sets the learning rate
    lines: dict[str, SeedBand]  # level(s) of the other axes -> final val loss against lr
    dropped: int  # runs of the sweep without a finite final validation loss


def lr_axis(
    levels: dict[str, dict[str, str]],
    runs: Sequence[dict[str, Any]],
    axes: dict[str, dict[str, Any]] | None = None,
) -> str | None:
    """The axis along which the learning rate moves: within every combination of the other
    axes' levels, each of its levels has one ``lr`` and there are at least two. When several
    do (an optimizer axis whose levels set their own learning rates), the first whose overrides
    (``axes``) set ``optimizer.lr``. None when no axis sweeps it, or a run has no ``lr`` (a runs
    table written before it had one). ``runs``: rows of variants that ``levels`` (variant ->
    axis -> level) knows."""
    if not runs or not all(is_number(run.get("lr")) for run in runs):
        return None
    names = list(levels[str(runs[0]["variant"])])
    sweeping = [axis for axis in names if _moves_lr(axis, names, levels, runs)]
    setting = [axis for axis in sweeping if _sets_lr((axes or {}).get(axis, {}))]
    return (setting or sweeping or [None])[0]


def _moves_lr(
    axis: str, names: list[str], levels: dict[str, dict[str, str]], runs: Sequence[dict[str, Any]]
) -> bool:
    groups: dict[tuple[str, ...], dict[str, set[float]]] = {}
    for run in runs:
        mine = levels[str(run["variant"])]
        others = tuple(mine[a] for a in names if a != axis)
        groups.setdefault(others, {}).setdefault(mine[axis], set()).add(float(run["lr"]))
    return all(_sweeps(by_level) for by_level in groups.values())


def _sets_lr(levels: dict[str, Any]) -> bool:
    """Whether some level's overrides set the learning rate (``optimizer.lr``, maybe with a
    stage prefix, or ``optimizer: {lr: ...}``)."""
    for overrides in levels.values():
        for key, value in (overrides or {}).items():
            dotted = f".{key}"
            if dotted.endswith(".optimizer.lr"):
                return True
            if dotted.endswith(".optimizer") and isinstance(value, dict) and "lr" in value:
                return True
    return False


def _sweeps(by_level: dict[str, set[float]]) -> bool:
    """One learning rate per level, and more than one learning rate."""
    if any(len(lrs) != 1 for lrs in by_level.values()):
        return False
    return len(set().union(*by_level.values())) > 1


def lr_sweep(
    axes: dict[str, dict[str, Any]], runs: Sequence[dict[str, Any]], stage: str | None = None
) -> LrSweep | None:
    """Final validation loss against the learning rate per level of the other axes, from the
    rows of results/runs.parquet (of ``stage`` when given: the stage the experiment ends with);
    None when no axis sweeps the learning rate."""
    levels = variant_levels(axes)
    chosen = [
        r
        for r in runs
        if str(r["variant"]) in levels and (stage is None or r.get("stage", stage) == stage)
    ]
    axis = lr_axis(levels, chosen, axes)
    if axis is None:
        return None
    points: dict[str, dict[str, list[tuple[float, float]]]] = {}
    dropped = 0
    for run in chosen:
        mine = levels[str(run["variant"])]
        line = "+".join(level for a, level in mine.items() if a != axis) or ALL_RUNS
        loss = run.get("final_val_loss")
        if not is_number(loss):
            dropped += 1
            continue
        # One series per seed, so that the band is over seeds at each learning rate.
        by_seed = points.setdefault(line, {}).setdefault(str(run["seed"]), [])
        by_seed.append((float(run["lr"]), float(loss)))
    lines = {line: seed_band(list(by_seed.values())) for line, by_seed in points.items()}
    return LrSweep(axis, lines, dropped)
