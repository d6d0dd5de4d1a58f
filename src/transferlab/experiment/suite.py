"""Every recipe in one go (``transferlab recipes run --all``): each recipe's preset runs into
``ROOT/NAME-PRESET`` in turn, reseeded when asked. A recipe that fails does not stop the others:
its folder gets ``failure.json`` (what failed and why), which the scoreboard shows as its row;
a later success removes it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transferlab.artifacts import write_json_atomic
from transferlab.experiment.loading import load_experiment
from transferlab.experiment.reseed import run_reseeded, run_set

FAILURE_NAME = "failure.json"


def run_suite(
    recipes: list[Path],
    preset: str,
    root: Path,
    reseed: int = 0,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Run each recipe file's ``preset`` (with ``reseed`` fresh seed sets when > 0) and return
    the experiment folders in order, failed ones included."""
    out = []
    for path in recipes:
        exp_dir = Path(root) / f"{path.stem}-{preset}"
        exp_dir.mkdir(parents=True, exist_ok=True)
        log(f"recipe {path.stem} ({preset}) -> {exp_dir}")
        # the command that reruns this recipe alone (a fresh seed set adds its seeds)
        command = f"transferlab recipes run {path.stem} --preset {preset} --out {exp_dir}"
        run = run_set(jobs, "local", command, log)
        try:
            spec = load_experiment(path, preset=preset)
            if reseed:
                run_reseeded(spec, exp_dir, reseed, run, log)
            else:
                run(spec, exp_dir, "original seeds")
        except Exception as exc:  # noqa: BLE001 - any failure is this recipe's row, not the end
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log(f"recipe {path.stem} failed: {reason}")
            write_json_atomic(exp_dir / FAILURE_NAME, {"recipe": path.stem, "error": reason})
        else:
            (exp_dir / FAILURE_NAME).unlink(missing_ok=True)
        out.append(exp_dir)
    return out
