"""The moe-global-batch-balance recipe, shrunken (a few steps of a small model on a slice of each
domain, two seeds), end to end: summary.json holds every measure with the right variants (the
router's specialization only for the moe variants, logged by both of them) and one verdict per
expectation. Tiny runs decide nothing, so the verdicts' values are not checked."""

from __future__ import annotations

import math

from tiny_experiment import run_quietly
from transferlab.experiment import load_experiment
from transferlab.recipes import recipe_path

SHRINK = [
    "seeds=[0,1]",
    "base.tokenizer.vocab_size=384",
    "base.data.seq_len=32",
    "base.data.sources.0.world.num_people=40",
    "base.data.sources.1.modules=[json]",
    "base.data.sources.2.match=['a*', 'b*']",  # 11 topics of the reference
    "base.model.n_layers=1",
    "base.trainer.max_steps=4",
    "base.trainer.batch_size=4",
    "base.schedule.warmup_steps=1",
    "base.trainer.eval_interval=4",
    "base.trainer.eval_batches=2",
    "base.trainer.checkpoint_interval=4",
    "base.trainer.progress=false",
    "base.trainer.callbacks.1.every=2",
]


def test_the_shrunken_recipe_measures_and_judges_every_expectation(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = load_experiment(recipe_path("moe-global-batch-balance"), "quick", SHRINK)
    assert spec.variant_names() == ["micro", "global", "dense"]
    summary = run_quietly(spec, tmp_path / "exp")

    measures = {m["measure"]: m for m in summary["measures"]}
    assert list(measures) == [
        "final_val_loss",
        "domain_mean_val_loss",
        "specialization",
        "bios_val_loss",
        "code_val_loss",
        "docs_val_loss",
    ]
    for label, measure in measures.items():
        expected = (
            ["micro", "global"] if label == "specialization" else ["micro", "global", "dense"]
        )
        assert [e["variant"] for e in measure["estimates"]] == expected
        assert measure["variants"] == {v: [v] for v in expected}
        values = {(v["variant"], v["seed"]): v["value"] for v in measure["values"]}
        assert set(values) == {(v, s) for v in expected for s in (0, 1)}
        assert all(math.isfinite(value) for value in values.values())
    # Per seed, the domain mean is the mean of the three domains' losses.
    for seed in (0, 1):
        for variant in ("micro", "global", "dense"):
            per_domain = [
                next(
                    v["value"]
                    for v in measures[f"{d}_val_loss"]["values"]
                    if (v["variant"], v["seed"]) == (variant, seed)
                )  # fmt: skip
                for d in ("bios", "code", "docs")
            ]
            mean = next(v["value"] for v in measures["domain_mean_val_loss"]["values"]
                        if (v["variant"], v["seed"]) == (variant, seed))  # fmt: skip
            assert math.isclose(mean, sum(per_domain) / 3, rel_tol=1e-12)
    pairs = [(c["variant"], c["reference"]) for c in measures["final_val_loss"]["comparisons"]]
    assert pairs == [("global", "micro"), ("global", "dense"), ("micro", "dense")]
    assert [(c["variant"], c["reference"]) for c in measures["specialization"]["comparisons"]] == [
        ("global", "micro")
    ]

    verdicts = summary["verdicts"]
    assert [v["measure"] for v in verdicts] == [
        "final_val_loss",
        "domain_mean_val_loss",
        "specialization",
    ]
    assert all((v["variant"], v["reference"]) == ("global", "micro") for v in verdicts)
    assert all(v["status"] in {"reproduced", "not reproduced", "inconclusive"} for v in verdicts)
