"""The low-rank-sparse recipe, shrunk (a 32-wide one-layer model, 4 steps on one stdlib package,
two learning rates, two seeds), end to end: summary.json has both measures for the four
collapsed variants, each a verdict with its variants, and the runs' training-state bytes add up.
Tiny runs decide nothing, so the verdicts' values are not checked."""

from __future__ import annotations

import pyarrow.parquet as pq

from tiny_experiment import run_quietly
from transferlab.experiment import load_experiment
from transferlab.recipes import recipe_path

SHRUNK = [
    "base.tokenizer.vocab_size=300",
    "base.data.seq_len=32",
    "base.data.val_fraction=0.2",
    "base.data.sources=[{name: python_stdlib, label: stdlib, side: pretraining, modules: [json]}]",
    "base.model={d_model: 32, n_layers: 1, n_heads: 2}",
    "base.schedule.warmup_steps=1",
    "base.trainer.max_steps=4",
    "base.trainer.batch_size=4",
    "base.trainer.eval_interval=4",
    "base.trainer.eval_batches=1",
    "base.trainer.checkpoint_interval=4",
    "base.trainer.progress=false",
    "axes.lr={lo: {optimizer.lr: 1.0e-3}, hi: {optimizer.lr: 1.0e-2}}",
    "seeds=[0, 1]",
]
VARIANTS = ["dense", "low_rank", "sparse_low_rank", "galore"]
EXPECTED = [  # (measure, variant, reference, direction), as the recipe states them
    ("final_val_loss", "sparse_low_rank", "low_rank", "better"),
    ("training_state_bytes", "sparse_low_rank", "dense", "better"),
    ("final_val_loss", "galore", "dense", "worse"),
    ("training_state_bytes", "galore", "dense", "better"),
]


def test_the_shrunk_recipe_measures_loss_and_memory_and_judges_every_expectation(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = load_experiment(recipe_path("low-rank-sparse"), "quick", SHRUNK)
    summary = run_quietly(spec, tmp_path / "exp")

    loss, memory = summary["measures"]
    assert (loss["measure"], memory["measure"]) == ("final_val_loss", "training_state_bytes")
    for measure in (loss, memory):
        assert measure["over"] == "lr" and measure["pick"] == "best"
        assert [e["variant"] for e in measure["estimates"]] == VARIANTS
        assert all(e["n_seeds"] == 2 and e["picked"] in ("lo", "hi") for e in measure["estimates"])
        assert len(measure["comparisons"]) == 6  # all pairs of the four variants
    judged = [
        (v["measure"], v["variant"], v["reference"], v["expected"]) for v in summary["verdicts"]
    ]
    assert judged == EXPECTED
    statuses = {"reproduced", "not reproduced", "inconclusive"}
    assert all(v["status"] in statuses and v["n_seeds"] == 2 for v in summary["verdicts"])

    # Every run records its training state, the sum of its parts; GaLore keeps the dense
    # parameters and gradients and shrinks only the optimizer state.
    runs = pq.read_table(tmp_path / "exp" / "results" / "runs.parquet").to_pylist()
    assert len(runs) == len(VARIANTS) * 2 * 2
    parts = ("parameter_bytes", "buffer_bytes", "gradient_bytes", "optimizer_state_bytes")
    for run in runs:
        assert run["training_state_bytes"] == sum(run[part] for part in parts)
    by_variant = {run["variant"].split("+")[0]: run for run in runs}
    dense, galore = by_variant["dense"], by_variant["galore"]
    assert galore["parameter_bytes"] == dense["parameter_bytes"]
    assert galore["optimizer_state_bytes"] < dense["optimizer_state_bytes"]
    assert by_variant["sparse_low_rank"]["buffer_bytes"] > 0 == dense["buffer_bytes"]
    values = {(v["variant"], v["seed"]): v["value"] for v in memory["values"]}
    picked = {e["variant"]: e["picked"] for e in memory["estimates"]}
    for run in runs:
        variant, level = run["variant"].split("+")
        if picked[variant] == level:
            assert values[(variant, run["seed"])] == run["training_state_bytes"]
