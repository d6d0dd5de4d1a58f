"""The report's stability figures: the series they draw (bands over seeds, attention-logit growth,
final loss against the learning rate of the axis that sweeps it) exactly, and a tiny experiment
whose runs log them shows both figures."""

from __future__ import annotations

import math
import re

import pyarrow.parquet as pq
import pytest
from matplotlib.colors import to_hex

from tiny_experiment import tiny_base
from transferlab.experiment import ExperimentSpec, run_experiment
from transferlab.report import plots
from transferlab.report.series import SeedBand, metric_series, seed_band, variant_bands
from transferlab.report.stability import ALL_RUNS, LOGIT_KEY, lr_axis, lr_sweep

AXES = {
    "qk": {"off": {}, "on": {"model.qk_norm": True}},
    "lr": {"low": {"optimizer.lr": 1e-3}, "high": {"optimizer.lr": 1e-2}},
}
LEVELS = {
    "off+low": {"qk": "off", "lr": "low"},
    "off+high": {"qk": "off", "lr": "high"},
    "on+low": {"qk": "on", "lr": "low"},
    "on+high": {"qk": "on", "lr": "high"},
}
LR = {"low": 1e-3, "high": 1e-2}


def _run(variant: str, seed: int, loss: float, **extra) -> dict:
    lr = LR[variant.split("+")[1]]
    return {
        "variant": variant,
        "seed": seed,
        "stage": "pretrain",
        "lr": lr,
        "final_val_loss": loss,
        **extra,
    }


RUNS = [
    _run("off+low", 0, 4.0),
    _run("off+low", 1, 4.4),
    _run("off+high", 0, 3.0),
    _run("off+high", 1, 3.6),
    _run("on+low", 0, 4.2),
    _run("on+low", 1, 4.2),
    _run("on+high", 0, 2.5),
    _run("on+high", 1, float("nan")),  # diverged or never validated
]


# ----------------------------------------------------------------------------- series
def test_a_seed_band_is_the_mean_min_max_and_count_per_x():
    band = seed_band([[(0, 4.0), (10, 3.0), (20, 2.0)], [(0, 5.0), (10, 4.0)], [(10, 1.0)]])
    assert band == SeedBand(
        x=[0, 10, 20],
        mean=[4.5, 8.0 / 3, 2.0],
        low=[4.0, 1.0, 2.0],
        high=[5.0, 4.0, 2.0],
        n=[2, 3, 1],
    )


def test_metric_series_keeps_the_rows_that_logged_a_finite_value():
    rows = [
        {"step": 1, LOGIT_KEY: 2.0},
        {"step": 2, "train_loss": 5.0},  # a row of another callback
        {"step": 3, LOGIT_KEY: float("inf")},
        {"step": 4, LOGIT_KEY: 3.5},
    ]
    assert metric_series(rows, LOGIT_KEY) == [(1.0, 2.0), (4.0, 3.5)]


def test_logit_growth_is_per_variant_over_its_seeds_and_skips_variants_without_it():
    curves = {
        "off": [
            [{"step": 2, LOGIT_KEY: 3.0}, {"step": 4, LOGIT_KEY: 5.0}],
            [{"step": 2, LOGIT_KEY: 1.0}],
        ],
        "on": [[{"step": 2, LOGIT_KEY: 1.5}]],
        "unmeasured": [[{"step": 2, "train_loss": 4.0}]],
    }
    bands = variant_bands(curves, LOGIT_KEY)
    assert list(bands) == ["off", "on"]
    assert bands["off"] == SeedBand([2.0, 4.0], [2.0, 5.0], [1.0, 5.0], [3.0, 5.0], [2, 1])


# ----------------------------------------------------------------------------- lr sweep
def test_the_lr_axis_is_the_one_that_moves_the_learning_rate():
    assert lr_axis(LEVELS, RUNS) == "lr"
    # Levels of another axis with learning rates of their own (the data alone cannot tell
    # which axis sweeps): the axis whose overrides set optimizer.lr.
    own = [{**r, "lr": r["lr"] * (3 if r["variant"].startswith("on") else 1)} for r in RUNS]
    assert lr_axis(LEVELS, own) == "qk"
    assert lr_axis(LEVELS, own, AXES) == "lr"
    nested = {"qk": AXES["qk"], "lr": {"low": {"optimizer": {"lr": 1e-3}}, "high": {}}}
    assert lr_axis(LEVELS, own, nested) == "lr"


def test_no_lr_axis_without_a_sweep_or_without_the_column():
    same = [{**r, "lr": 1e-3} for r in RUNS]
    assert lr_axis(LEVELS, same) is None
    assert lr_axis(LEVELS, [{k: v for k, v in r.items() if k != "lr"} for r in RUNS]) is None
    # An lr that changes between seeds of a variant is no axis's doing.
    noisy = [{**r, "lr": r["lr"] * (1 + r["seed"])} for r in RUNS]
    assert lr_axis(LEVELS, noisy) is None


def test_the_sweep_has_a_line_per_level_of_the_other_axes_with_its_seed_spread():
    sweep = lr_sweep(AXES, RUNS, stage="pretrain")
    assert sweep.axis == "lr" and sweep.dropped == 1
    assert list(sweep.lines) == ["off", "on"]
    off, on = sweep.lines["off"], sweep.lines["on"]
    assert off.x == [1e-3, 1e-2] and off.n == [2, 2]
    assert (
        off.mean == pytest.approx([4.2, 3.3]) and off.low == [4.0, 3.0] and off.high == [4.4, 3.6]
    )
    assert on == SeedBand([1e-3, 1e-2], [4.2, 2.5], [4.2, 2.5], [4.2, 2.5], [2, 1])


def test_the_sweep_reads_the_stage_it_is_given_and_a_single_axis_is_one_line():
    axes = {"lr": AXES["lr"]}
    runs = [
        {"variant": "low", "seed": 0, "stage": "pretrain", "lr": 1e-3, "final_val_loss": 9.0},
        {"variant": "low", "seed": 0, "stage": "more", "lr": 1e-3, "final_val_loss": 4.0},
        {"variant": "high", "seed": 0, "stage": "more", "lr": 1e-2, "final_val_loss": 3.0},
    ]
    sweep = lr_sweep(axes, runs, stage="more")
    assert list(sweep.lines) == [ALL_RUNS]
    assert sweep.lines[ALL_RUNS].x == [1e-3, 1e-2] and sweep.lines[ALL_RUNS].mean == [4.0, 3.0]
    assert lr_sweep({}, runs) is None
    assert lr_sweep({"qk": AXES["qk"]}, RUNS) is None


# ----------------------------------------------------------------------------- figures
def test_the_figures_draw_the_bands():
    bands = {"off": SeedBand([1e-3, 1e-2], [4.2, 3.3], [4.0, 3.0], [4.4, 3.6], [2, 2])}
    bands["on"] = SeedBand([1e-3, 1e-2], [4.2, 2.5], [4.2, 2.5], [4.2, 2.5], [1, 1])
    ax = plots.loss_vs_lr(bands, "lr", plots.variant_colors(["off", "on"])).axes[0]
    assert ax.get_xscale() == "log"
    off, on = ax.lines
    assert list(off.get_xdata()) == [1e-3, 1e-2] and list(off.get_ydata()) == [4.2, 3.3]
    assert off.get_label() == "off (2 seeds)" and on.get_label() == "on (1 seeds)"
    assert to_hex(off.get_color()) == "#1f77b4"
    (band,) = ax.collections  # one seed draws no band
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 3.0 and ys.max() == 4.4
    growth = plots.attention_logit_growth({"off": bands["off"]}, {}).axes[0]
    assert list(growth.lines[0].get_ydata()) == [4.2, 3.3]
    assert growth.get_ylabel() == "max attention logit"


# ----------------------------------------------------------------------------- end to end
@pytest.fixture
def store(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))


def test_a_tiny_lr_sweep_reports_logit_growth_and_loss_against_lr(tmp_path, store):
    base = tiny_base(4, every=4, callbacks=[{"name": "stability", "every": 2}])
    spec = ExperimentSpec.model_validate(
        {"name": "instabilities", "base": base, "axes": AXES, "seeds": [0, 1]}
    )
    exp = tmp_path / "exp"
    run_experiment(spec, exp, log=lambda _: None)
    runs = pq.read_table(exp / "results" / "runs.parquet").to_pylist()
    assert {(r["variant"], r["lr"]) for r in runs} == {(v, LR[v.split("+")[1]]) for v in LEVELS}
    page = (exp / "report.html").read_text()
    assert "<h2>Stability</h2>" in page
    assert 'alt="max attention logit vs step"' in page
    assert 'alt="final validation loss vs learning rate"' in page
    # The table holds each line's mean over the two seeds of runs.parquet's final losses.
    for qk in ("off", "on"):
        for level, lr in LR.items():
            losses = [r["final_val_loss"] for r in runs if r["variant"] == f"{qk}+{level}"]
            assert all(math.isfinite(x) for x in losses) and len(losses) == 2
            cells = re.escape(f'<td>{qk}</td><td class="num">{lr:.3g}</td>')
            mean = f"{sum(losses) / 2:.3f} [{min(losses):.3f}, {max(losses):.3f}]"
            assert re.search(cells + rf"<td class=\"num\">{re.escape(mean)}</td>", page)
