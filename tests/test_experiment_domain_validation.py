"""Per-domain validation in an experiment: runs.parquet holds each run's final validation loss
per domain (null for a domain a run did not have) and its weighting; `transferlab results` prints
them per variant, and the report draws the per-domain validation curves with the weighting in
the caption."""

from __future__ import annotations

import pyarrow.parquet as pq
from rich.console import Console

from domains_setup import two_domains
from tiny_experiment import tiny_base
from transferlab.experiment import ExperimentSpec, plan_experiment, run_experiment
from transferlab.report import plots, print_summary
from transferlab.report.html import write_report
from transferlab.report.markup import esc
from transferlab.train import read_metrics


def test_runs_table_and_report_show_each_domains_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    two_domains(tmp_path)  # writes prose.jsonl and code.jsonl
    prose, code = ({"name": "jsonl", "path": str(tmp_path / f"{d}.jsonl"), "label": d}
                   for d in ("prose", "code"))  # fmt: skip
    base = tiny_base(4, every=2)
    base["data"]["val_fraction"] = 0.3
    base["tokenizer"] = {"kind": "word"}
    spec = ExperimentSpec.model_validate(
        {
            "name": "domains",
            "base": base,
            "axes": {
                "data": {
                    "mixed": {"data.sources": [prose, code]},
                    "prose": {"data.sources": [prose]},
                }
            },
            "seeds": [0],
            "tasks": [],
            "measures": [{"name": "final_val_loss"}],
        }
    )
    run_experiment(spec, tmp_path / "exp", log=lambda _: None)

    runs = {
        r["variant"]: r for r in pq.read_table(tmp_path / "exp/results/runs.parquet").to_pylist()
    }
    assert set(runs) == {"mixed", "prose"}
    for planned in plan_experiment(spec).runs:
        run = runs[planned.variant]
        last = [r for r in read_metrics(planned.run_dir / "metrics.jsonl") if "val_loss" in r][-1]
        assert run["val_weighting"] == "mixture"
        logged = {k: v for k, v in last.items() if k.startswith("val_loss/")}
        assert {f"final_{k}": run[f"final_{k}"] for k in logged} == {
            f"final_{k}": v for k, v in logged.items()
        }
    assert runs["prose"]["final_val_loss/code"] is None
    assert runs["prose"]["final_val_loss/prose"] == runs["prose"]["final_val_loss"]
    mixed = runs["mixed"]
    assert (
        min(mixed["final_val_loss/prose"], mixed["final_val_loss/code"])
        < mixed["final_val_loss"]
        < max(mixed["final_val_loss/prose"], mixed["final_val_loss/code"])
    )

    console = Console(record=True, width=120)
    print_summary(tmp_path / "exp", console)
    printed = [line.rstrip() for line in console.export_text().splitlines()]
    start = printed.index("final val loss per domain")
    cell = "{:.3f} (n=1)".format
    assert printed[start + 2 : start + 7] == [
        "┃ variant ┃       prose ┃        code ┃",
        "┡━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━━┩",
        f"│ mixed   │ {cell(mixed['final_val_loss/prose'])} │ "
        f"{cell(mixed['final_val_loss/code'])} │",
        f"│ prose   │ {cell(runs['prose']['final_val_loss/prose'])} │         n/a │",
        "└─────────┴─────────────┴─────────────┘",
    ]
    stated = "val_loss weighs the domains by trainer.validation_weighting = mixture: weighted"
    assert "".join(stated.split()) in "".join("".join(printed[start + 7 :]).split())

    page = write_report(tmp_path / "exp").read_text(encoding="utf-8")
    assert 'alt="validation loss per domain"' in page
    assert esc("trainer.validation_weighting = mixture: weighted by each domain's share") in page


def test_the_per_domain_figure_has_a_panel_per_domain():
    rows = [{"step": 1, "val_loss/a": 2.0, "val_loss/b": 3.0}, {"step": 2, "val_loss/a": 1.5}]
    fig = plots.domain_val_curves({"v": [rows]}, ["a", "b", "c", "d", "e"], {"v": "#000000"})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b", "c", "d", "e"]
    assert len(fig.axes) == 8  # two rows of four
    (line,) = visible[0].get_lines()
    assert list(line.get_xdata()) == [1.0, 2.0] and list(line.get_ydata()) == [2.0, 1.5]
    assert not visible[2].get_lines()  # no run logged domain c
