"""The report's figures, drawn with matplotlib's object API (no pyplot, so no global state and no
GUI backend) and embedded as inline PNG data URIs, so the page needs nothing outside itself.

Every figure takes plain rows (dicts from ``summary.json``, metrics rows from ``metrics.jsonl``) or
the bands of ``series.py`` and returns a ``Figure``; ``data_uri`` turns it into an ``<img>`` source.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from transferlab.report.formatting import at_size, is_number
from transferlab.report.series import SeedBand, variant_bands
from transferlab.train.callbacks.validation import DOMAIN_PREFIX

VERDICT_COLORS = {"better": "#2e7d32", "worse": "#c62828", "inconclusive": "#757575"}
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)  # matplotlib's tab10
DPI = 96


def variant_colors(variants: Sequence[str]) -> dict[str, str]:
    """One stable colour per variant, the same in every figure."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(variants)}


def plain(text: Any) -> str:
    """Text that matplotlib draws literally: a ``$`` would otherwise start mathtext, and a variant
    name with one ``$`` would make the whole figure fail to render."""
    return str(text).replace("$", r"\$")


def data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    # No "Software" tag: the same data gives the same bytes whatever matplotlib version drew it.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def training_curves(
    curves: dict[str, list[list[dict[str, Any]]]], colors: dict[str, str]
) -> Figure:
    """Train and validation loss vs step: per variant the mean over its seeds, with a band from
    the lowest to the highest seed at each step. ``curves``: variant -> one metrics list per seed."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    train_ax, val_ax = fig.subplots(1, 2)
    _loss_axis(train_ax, curves, "train_loss", colors)
    _loss_axis(val_ax, curves, "val_loss", colors)
    return fig


def metric_curves(
    curves: dict[str, list[list[dict[str, Any]]]], key: str, ylabel: str, colors: dict[str, str]
) -> Figure:
    """One logged metric vs step, as ``training_curves`` draws the losses: per variant the mean
    over its seeds with a band from the lowest to the highest seed."""
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    _loss_axis(fig.subplots(), curves, key, colors, ylabel)
    return fig


def domain_val_curves(
    curves: dict[str, list[list[dict[str, Any]]]], domains: Sequence[str], colors: dict[str, str]
) -> Figure:
    """Each data domain's validation loss (``val_loss/<domain>``) vs step, one panel per domain
    (four to a row), drawn as ``training_curves`` draws the losses."""
    columns = min(len(domains), 4)
    rows = -(-len(domains) // columns)
    fig = Figure(figsize=(3.2 * columns + 1, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False).ravel())
    for ax, domain in zip(axes, domains, strict=False):
        _loss_axis(ax, curves, DOMAIN_PREFIX + domain, colors, ylabel="val loss")
        ax.set_title(plain(domain))
    for ax in axes[len(domains) :]:
        ax.set_visible(False)
    return fig


def expert_loads(record: dict[str, Any]) -> Figure:
    """A run's expert loads per data domain (``routing.json``): a row per domain and layer, a
    column per expert, the colour (and the number) the fraction of the domain's token-slots
    the expert took; a uniform router gives every cell 1 / n_experts."""
    loads = np.asarray(record["loads"], dtype=float)  # [domain, layer, expert]
    n_domains, n_layers, n_experts = loads.shape
    matrix = loads.reshape(n_domains * n_layers, n_experts)
    labels = [f"{d} / layer {i}" for d in record["domains"] for i in range(n_layers)]
    fig = Figure(figsize=(3.5 + 0.6 * n_experts, 1.2 + 0.35 * len(labels)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, aspect="auto")
    if matrix.size <= 400:  # numbers stay legible
        for (row, col), value in np.ndenumerate(matrix):
            shade = "white" if value < 0.6 * matrix.max() else "black"
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=shade)
    ax.set_xticks(range(n_experts), [str(e) for e in range(n_experts)])
    ax.set_yticks(range(len(labels)), [plain(label) for label in labels])
    ax.set_xlabel("expert")
    fig.colorbar(image, ax=ax, label="share of token-slots")
    return fig


def _loss_axis(
    ax: Axes,
    curves: dict[str, list[list[dict[str, Any]]]],
    key: str,
    colors: dict[str, str],
    ylabel: str | None = None,
) -> None:
    bands = variant_bands(curves, key)
    _band_lines(ax, bands, colors)
    _finish(ax, bool(bands), xlabel="step", ylabel=ylabel or key.replace("_", " "))


def attention_logit_growth(bands: dict[str, SeedBand], colors: dict[str, str]) -> Figure:
    """The largest attention logit vs step: per variant the mean over its seeds, with a band
    from the lowest to the highest seed (``series.variant_bands`` of ``attn_logit_max``)."""
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    _band_lines(ax, bands, colors)
    _finish(ax, bool(bands), xlabel="step", ylabel="max attention logit")
    return fig


def loss_vs_lr(bands: dict[str, SeedBand], axis: str, colors: dict[str, str]) -> Figure:
    """Final validation loss vs learning rate (log scale): a line per level of the other axes
    through the means over seeds, the band from the lowest to the highest seed."""
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    _band_lines(ax, bands, colors, marker="o-")
    ax.set_xscale("log")
    _finish(ax, bool(bands), xlabel=plain(f"learning rate (axis {axis})"), ylabel="final val loss")
    return fig


def _band_lines(
    ax: Axes, bands: dict[str, SeedBand], colors: dict[str, str], marker: str = "-"
) -> None:
    """A line through each band's means, labelled with its seeds, and the band shaded where it
    spans more than one seed."""
    for name, band in bands.items():
        color = colors.get(name)
        seeds = max(band.n)
        ax.plot(band.x, band.mean, marker, color=color, label=plain(f"{name} ({seeds} seeds)"))
        if seeds > 1:
            ax.fill_between(band.x, band.low, band.high, color=color, alpha=0.2, linewidth=0)


def transfer_curve(rows: list[dict[str, Any]], ylabel: str, colors: dict[str, str]) -> Figure:
    """A task's metric vs training step: per variant a line through its means (``summary.json``
    ``curves`` rows) with its interval shaded."""
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    for line in dict.fromkeys(at_size(str(row["variant"]), row) for row in rows):
        mine = [r for r in rows if at_size(str(r["variant"]), r) == line]
        mine.sort(key=lambda r: r["step"])
        steps = [r["step"] for r in mine]
        color = colors.get(str(mine[0]["variant"]))
        ax.plot(steps, [r["mean"] for r in mine], "o-", color=color, label=plain(line))
        low = [r["low"] if is_number(r["low"]) else np.nan for r in mine]
        high = [r["high"] if is_number(r["high"]) else np.nan for r in mine]
        ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
    _finish(ax, bool(rows), xlabel="training step", ylabel=plain(ylabel))
    return fig


def estimate_whiskers(
    estimates: list[dict[str, Any]], metric: str, colors: dict[str, str]
) -> Figure:
    """Dot-and-whisker plot: one row per variant, its mean and interval."""
    fig = Figure(figsize=(7, 0.6 + 0.45 * max(len(estimates), 1)), layout="constrained")
    ax = fig.subplots()
    for y, est in enumerate(estimates):
        color = colors.get(str(est["variant"]), "#333333")
        _whisker(ax, y, est["mean"], est["low"], est["high"], color)
    ax.set_yticks(range(len(estimates)), [_row_label(str(e["variant"]), e) for e in estimates])
    ax.invert_yaxis()
    level = estimates[0].get("level", 0.95) if estimates else 0.95
    _finish(ax, bool(estimates), xlabel=plain(f"{metric}: mean and {level:.0%} interval"))
    return fig


def forest(comparisons: list[dict[str, Any]], metric: str) -> Figure:
    """Forest plot of paired differences (variant minus reference), coloured by verdict, with the
    zero line and, when the experiment set one, the +-min_effect band of differences too small
    to count."""
    fig = Figure(figsize=(7, 0.8 + 0.45 * max(len(comparisons), 1)), layout="constrained")
    ax = fig.subplots()
    ax.axvline(0.0, color="black", linewidth=0.8)
    band = max((c.get("min_effect") or 0.0 for c in comparisons), default=0.0)
    if band > 0:
        ax.axvspan(-band, band, color="#999999", alpha=0.15, linewidth=0)
    for y, comp in enumerate(comparisons):
        color = VERDICT_COLORS.get(str(comp.get("verdict")), "#333333")
        _whisker(ax, y, comp["diff"], comp["low"], comp["high"], color)
    labels = [_row_label(f"{c['variant']} - {c['reference']}", c) for c in comparisons]
    ax.set_yticks(range(len(comparisons)), labels)
    ax.invert_yaxis()
    for verdict, color in VERDICT_COLORS.items():
        ax.plot([], [], "o", color=color, label=verdict)
    level = comparisons[0].get("level", 0.95) if comparisons else 0.95
    xlabel = plain(f"difference in {metric} ({level:.0%} interval)")
    # The key goes outside the axes, where it can never cover an interval.
    _finish(ax, bool(comparisons), xlabel=xlabel, legend="outside right upper")
    return fig


def decision_accuracy(rows: list[dict[str, Any]], sizes: list[str], chance: float) -> Figure:
    """Decision accuracy against size, one line per metric (``summary.json`` ``decisions``
    accuracy rows of one task), each point with its interval, and the chance line."""
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.axhline(chance, color="black", linewidth=0.8, linestyle="--", label=f"chance {chance:g}")
    for i, metric in enumerate(dict.fromkeys(str(r["metric"]) for r in rows)):
        mine = sorted(
            (r for r in rows if r["metric"] == metric), key=lambda r: sizes.index(r["size"])
        )
        x = [sizes.index(r["size"]) + 0.04 * i for r in mine]  # a small offset keeps bars apart
        ax.errorbar(
            x,
            [r["accuracy"] for r in mine],
            yerr=[
                [r["accuracy"] - r["low"] for r in mine],
                [r["high"] - r["accuracy"] for r in mine],
            ],
            fmt="o-",
            color=_PALETTE[i % len(_PALETTE)],
            capsize=3,
            label=plain(metric),
        )
    ax.set_xticks(range(len(sizes) - 1), [plain(s) for s in sizes[:-1]])
    ax.set_ylim(-0.05, 1.05)
    _finish(ax, bool(rows), xlabel=plain(f"size (against {sizes[-1]})"), ylabel="decision accuracy")
    return fig


def loss_scatter(
    points: list[tuple[str, float, float]], metric: str, colors: dict[str, str]
) -> Figure:
    """Final validation loss (x) vs the run's mean downstream metric (y), one dot per run."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for variant in dict.fromkeys(p[0] for p in points):
        xs = [p[1] for p in points if p[0] == variant]
        ys = [p[2] for p in points if p[0] == variant]
        ax.scatter(xs, ys, color=colors.get(variant), label=plain(variant), s=36)
    _finish(ax, bool(points), xlabel="final validation loss", ylabel=plain(f"mean {metric}"))
    return fig


def _whisker(ax: Axes, y: float, mean: Any, low: Any, high: Any, color: str) -> None:
    if is_number(low) and is_number(high) and is_number(mean):
        ax.plot([low, high], [y, y], color=color, linewidth=2)
    if is_number(mean):
        ax.plot([mean], [y], "o", color=color, markersize=7)


def _row_label(name: str, row: dict[str, Any]) -> str:
    return plain(f"{at_size(name, row)}\n(n = {row.get('n_seeds')} x {row.get('n_examples')})")


def _finish(
    ax: Axes, drawn: bool, xlabel: str, ylabel: str | None = None, legend: str = "best"
) -> None:
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    elif ax.get_legend_handles_labels()[0] and legend.startswith("outside"):
        ax.figure.legend(loc=legend, fontsize="small")
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend, fontsize="small")
