"""The small-scale-instabilities recipe, shrunk (100 people, a few steps of the nano model, two
learning rates, two seeds), end to end: it trains, measures, compares and gives one verdict per
expectation on the variants the recipe names. Tiny runs decide nothing, so the verdicts' values
are not checked."""

from __future__ import annotations

from tiny_experiment import run_quietly
from transferlab.experiment import load_experiment
from transferlab.recipes import recipe_path

SHRUNK = [
    "base.world.num_people=100",
    "base.trainer.max_steps=6",
    "base.trainer.eval_interval=3",
    "base.trainer.checkpoint_interval=6",
    "base.schedule.warmup_steps=1",
    "base.trainer.callbacks=[{name: stability, every: 2}]",
    "seeds=[0, 1]",
    # the lowest and the highest learning rate of the sweep, as the recipe names them
    "axes.lr={lr1e-4: {optimizer.lr: 1.0e-4}, lr1e0: {optimizer.lr: 1.0}}",
    "compare.pairs=[[qknorm_zloss, plain], [qknorm_zloss+lr1e0, plain+lr1e0]]",
]


def test_the_shrunk_quick_preset_gives_a_verdict_per_expectation(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = load_experiment(recipe_path("small-scale-instabilities"), "quick", SHRUNK)
    assert spec.tasks == []
    summary = run_quietly(spec, tmp_path / "exp")

    measures = {m["measure"]: m for m in summary["measures"]}
    assert list(measures) == ["lr_sensitivity", "best_val_loss", "max_attn_logit"]
    sensitivity = measures["lr_sensitivity"]
    assert sensitivity["variants"] == {
        "plain": ["plain+lr1e-4", "plain+lr1e0"],
        "qknorm_zloss": ["qknorm_zloss+lr1e-4", "qknorm_zloss+lr1e0"],
    }
    assert [(c["variant"], c["reference"]) for c in sensitivity["comparisons"]] == [
        ("qknorm_zloss", "plain")
    ]
    assert [(c["variant"], c["reference"]) for c in measures["max_attn_logit"]["comparisons"]] == [
        ("qknorm_zloss+lr1e0", "plain+lr1e0")
    ]
    assert set(measures["best_val_loss"]["picks"]) == {"plain", "qknorm_zloss"}
    assert len(measures["max_attn_logit"]["values"]) == 4 * 2  # 4 variants x 2 seeds

    verdicts = summary["verdicts"]
    assert [(v["measure"], v["variant"], v["reference"]) for v in verdicts] == [
        ("lr_sensitivity", "qknorm_zloss", "plain"),
        ("max_attn_logit", "qknorm_zloss+lr1e0", "plain+lr1e0"),
    ]
    assert all(v["status"] in {"reproduced", "not reproduced", "inconclusive"} for v in verdicts)
    assert all(v["claim"] for v in verdicts)
