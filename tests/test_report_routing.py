"""The report's expert-routing section: runs with the routing callback get a specialization curve
per variant and a heatmap of each variant's final per-domain expert loads, their values in a
table, names escaped; an experiment without it shows no such section."""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_report_html import HOSTILE, VARIANTS, make_experiment, png_size
from transferlab.report import plots, write_report
from transferlab.report.inputs import load_experiment
from transferlab.train.callbacks.routing import ROUTING_FILE

LOADS = [  # [domain][layer][expert]
    [[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]],
    [[0.1, 0.1, 0.1, 0.7], [0.25, 0.25, 0.25, 0.25]],
]


def _add_routing(exp: Path) -> dict[str, float]:
    """Routing rows in each run's metrics and a routing.json; the final specialization by run."""
    plan = json.loads((exp / "plan.json").read_text())
    finals = {}
    for i, run in enumerate(plan["runs"]):
        run_dir = Path(run["run_dir"])
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        for row in rows:
            row["routing_specialization"] = 0.01 * row["step"] + 0.1 * i
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        finals[run["run_id"]] = rows[-1]["routing_specialization"]
        record = {
            "step": 40,
            "domains": ["prose", HOSTILE],
            "windows": {"prose": 4, HOSTILE: 4},
            "loads": LOADS,
            "js": [0.5, 0.0],
            "specialization": finals[run["run_id"]],
        }
        (run_dir / ROUTING_FILE).write_text(json.dumps(record))
    return finals


def test_routing_section_draws_curves_heatmaps_and_the_final_values(tmp_path: Path):
    exp = make_experiment(tmp_path)
    finals = _add_routing(exp)
    assert set(load_experiment(exp).routing) == set(finals)
    page = write_report(exp).read_text(encoding="utf-8")
    section = page[page.index("<h2>Expert routing</h2>") : page.index("<h2>Downstream results")]
    # One curve of specialization, one heatmap per variant (the first seed's).
    images = re.findall(r'<img src="([^"]*)" alt="([^"]*)"', section)
    assert [alt for _, alt in images] == [
        "routing specialization over training",
        *(f"expert loads of {v}".replace("<", "&lt;").replace(">", "&gt;") for v in VARIANTS),
    ]
    assert all(png_size(uri)[0] > 300 for uri, _ in images)
    assert section.count("seed 0: expert loads per domain and layer at step 40") == 2
    assert "uniform routing: 0.25 per expert" in section
    for run_id, value in finals.items():
        seed = int(run_id[-1])
        assert f'<td class="num">{seed}</td><td class="num">40</td>' in section
        assert f'<td class="num">{value:.3f}</td>' in section
    assert "<script" not in section and "&lt;script&gt;" in section  # the hostile domain name


def test_an_experiment_without_routing_has_no_routing_section(tmp_path: Path):
    page = write_report(make_experiment(tmp_path)).read_text(encoding="utf-8")
    assert "Expert routing" not in page


def test_the_heatmap_has_a_row_per_domain_and_layer():
    fig = plots.expert_loads({"domains": ["a", "b"], "loads": LOADS})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "a / layer 0",
        "a / layer 1",
        "b / layer 0",
        "b / layer 1",
    ]
    assert ax.images[0].get_array().shape == (4, 4)
    assert ax.images[0].get_array()[2, 3] == 0.7  # domain b, layer 0, expert 3
