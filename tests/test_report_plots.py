"""Report figures: the training-curve mean and band over seeds, verdict colours in the forest plot,
literal text in matplotlib, and byte-identical PNGs for identical data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from transferlab.report import plots


def _rows(losses: list[float]) -> list[dict]:
    return [{"step": 10 * i, "train_loss": loss} for i, loss in enumerate(losses)]


def test_training_curve_is_the_mean_with_a_min_max_band_over_seeds():
    # seed 1 stopped after step 10 (a partial run): later steps are seed 0 alone
    curves = {"a": [_rows([4.0, 3.0, 2.0]), _rows([5.0, 4.0])], "b": [_rows([6.0])]}
    fig = plots.training_curves(curves, plots.variant_colors(["a", "b"]))
    train_ax, val_ax = fig.axes[:2]
    line_a, line_b = train_ax.lines
    np.testing.assert_array_equal(line_a.get_xdata(), [0, 10, 20])
    np.testing.assert_array_equal(line_a.get_ydata(), [4.5, 3.5, 2.0])
    assert line_a.get_label() == "a (2 seeds)" and line_b.get_label() == "b (1 seeds)"
    assert to_hex(line_a.get_color()) == "#1f77b4" and to_hex(line_b.get_color()) == "#ff7f0e"
    (band,) = train_ax.collections  # only "a" has a spread; one seed draws no band
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 2.0 and ys.max() == 5.0
    assert [t.get_text() for t in val_ax.texts] == ["no data"]  # no run logged val_loss


def test_forest_colours_follow_the_verdict_and_show_the_zero_line():
    rows = [
        {
            "variant": v,
            "reference": "base",
            "diff": d,
            "low": d - 0.1,
            "high": d + 0.1,
            "verdict": verdict,
            "n_seeds": 2,
            "n_examples": 10,
            "level": 0.9,
            "min_effect": 0.05,
        }
        for v, d, verdict in (
            ("up", 0.3, "better"),
            ("down", -0.3, "worse"),
            ("flat", 0.0, "inconclusive"),
        )
    ]
    fig = plots.forest(rows, "correct")
    ax = fig.axes[0]
    dots = [line for line in ax.lines if line.get_marker() == "o" and len(line.get_xdata()) == 1]
    assert [to_hex(d.get_color()) for d in dots[:3]] == ["#2e7d32", "#c62828", "#757575"]
    assert [tick.get_text() for tick in ax.get_yticklabels()][0] == "up - base\n(n = 2 x 10)"
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)  # the zero line
    assert ax.get_xlabel() == "difference in correct (90% interval)"
    (band,) = ax.patches  # the +-min_effect band
    xs = band.get_path().transformed(band.get_patch_transform()).vertices[:, 0]
    assert pytest.approx(xs.min()) == -0.05 and pytest.approx(xs.max()) == 0.05


def test_dollar_signs_in_names_are_drawn_literally():
    def render(label: str) -> None:
        fig = Figure()
        fig.subplots().set_xlabel(label)
        fig.savefig(io.BytesIO(), format="png")

    with pytest.raises(ValueError):
        render("variant $_$")  # mathtext cannot parse it
    render(plots.plain("variant $_$"))
    rows = [{"variant": "$_$", "mean": 0.5, "low": 0.4, "high": 0.6, "n_seeds": 1, "n_examples": 3}]
    assert plots.data_uri(plots.estimate_whiskers(rows, "correct", {})).startswith("data:image/png")


def test_same_data_gives_the_same_png():
    points = [("a", 3.2, 0.4), ("b", 3.0, 0.6), ("a", 3.1, 0.5)]
    colors = plots.variant_colors(["a", "b"])
    first = plots.data_uri(plots.loss_scatter(points, "correct", colors))
    assert first == plots.data_uri(plots.loss_scatter(points, "correct", colors))
    assert first != plots.data_uri(plots.loss_scatter(points[:2], "correct", colors))
