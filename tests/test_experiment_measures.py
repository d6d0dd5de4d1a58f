"""Measures of the training runs: per-run values, collapsing an axis (a sweep measure, pick
best), paired comparisons over seeds and verdicts, on hand-written runs with known losses."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from tiny_experiment import tiny_base
from transferlab.analysis import holm
from transferlab.config import ConfigError, RunConfig, validate
from transferlab.experiment import ExpectSpec, ExperimentSpec, plan_experiment
from transferlab.experiment.analyze import analyze
from transferlab.experiment.measures import RunRecord
from transferlab.experiment.results import ResultTables, measure_table

VOCAB = 100
L0 = math.log(VOCAB)  # lr_sensitivity's loss at initialization
NAN = float("nan")
# (variant, seed) -> validation losses at steps 50 and 100 of a 100-step run.
LOSSES = {
    ("plain+lo", 0): (4.3, 4.0),
    ("plain+lo", 1): (4.5, 4.3),
    ("plain+lo", 2): (4.2, 3.9),
    ("plain+mid", 0): (3.8, 3.5),
    ("plain+mid", 1): (3.9, 3.6),
    ("plain+mid", 2): (3.7, 3.4),
    ("plain+hi", 0): (4.9, 5.0),  # ends above L0: clipped to L0
    ("plain+hi", 1): (4.0, NAN),  # diverged: counts as L0
    ("plain+hi", 2): (4.6, 4.4),
    ("qknorm+lo", 0): (4.1, 3.8),
    ("qknorm+lo", 1): (4.2, 3.9),
    ("qknorm+lo", 2): (4.0, 3.7),
    ("qknorm+mid", 0): (3.75, 3.45),
    ("qknorm+mid", 1): (3.8, 3.5),
    ("qknorm+mid", 2): (3.65, 3.35),
    ("qknorm+hi", 0): (3.9, 3.6),
    ("qknorm+hi", 1): (4.2, 3.9),
    ("qknorm+hi", 2): (3.8, 3.5),
}
AXES = {"norm": {"plain": {}, "qknorm": {}}, "lr": {"lo": {}, "mid": {}, "hi": {}}}
CONFIG = validate(
    RunConfig, {"name": "r", "model": {"vocab_size": VOCAB}, "trainer": {"max_steps": 100}}
)


def _record(variant: str, seed: int, losses: tuple[float, ...], **logged) -> RunRecord:
    steps = [50 * (i + 1) for i in range(len(losses))]
    metrics = [
        {
            "step": step,
            "tokens": step * 128,
            "val_loss": loss,
            **{k: v[i] for k, v in logged.items()},
        }
        for i, (step, loss) in enumerate(zip(steps, losses, strict=True))
    ]
    summary = {
        "variant": variant,
        "seed": seed,
        "stage": "pretrain",
        "run_id": f"{variant}/{seed}",
        "final_val_loss": losses[-1],
        "params_total": 1000 + 10 * seed,
    }
    return RunRecord(summary, metrics, CONFIG, {"optimizer_state_bytes": 4096, "params_total": -1})


RECORDS = [_record(variant, seed, losses) for (variant, seed), losses in LOSSES.items()]


def _spec(measures: list, **fields) -> ExperimentSpec:
    data = {"name": "m", "axes": AXES, "seeds": [0, 1, 2], "measures": measures, **fields}
    return ExperimentSpec.model_validate(data)


def _analyze(spec: ExperimentSpec, records: list[RunRecord] = RECORDS) -> dict:
    runs = pa.Table.from_pylist([record.summary for record in records])
    return analyze(spec, ResultTables(pa.table({}), runs, measures=measure_table(spec, records)))


def _t_interval(values: list[float]) -> tuple[float, float, float, float]:
    """Mean, 95% t interval over seeds and the one-sample t-test p-value, by hand."""
    values = np.asarray(values)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    p = stats.ttest_1samp(values, 0.0).pvalue
    return values.mean(), values.mean() - half, values.mean() + half, p


def test_lr_sensitivity_follows_wortsman_by_hand_and_gives_the_verdict():
    expect = {"measure": "lr_sensitivity", "variant": "qknorm", "reference": "plain"}
    spec = _spec([{"name": "lr_sensitivity", "over": "lr"}], expect={**expect, "claim": "c"})
    (measure,) = _analyze(spec)["measures"]
    # mean over lo, mid, hi of min(L, L0), minus the best of the sweep (always mid here)
    plain = [(4.0 + 3.5 + L0) / 3 - 3.5, (4.3 + 3.6 + L0) / 3 - 3.6, (3.9 + 3.4 + 4.4) / 3 - 3.4]
    qknorm = [
        (3.8 + 3.45 + 3.6) / 3 - 3.45,
        (3.9 + 3.5 + 3.9) / 3 - 3.5,
        (3.7 + 3.35 + 3.5) / 3 - 3.35,
    ]
    assert measure["variants"] == {
        "plain": ["plain+lo", "plain+mid", "plain+hi"],
        "qknorm": ["qknorm+lo", "qknorm+mid", "qknorm+hi"],
    }
    values = {(v["variant"], v["seed"]): v["value"] for v in measure["values"]}
    assert [values[("plain", s)] for s in range(3)] == pytest.approx(plain, abs=1e-12)
    assert [values[("qknorm", s)] for s in range(3)] == pytest.approx(qknorm, abs=1e-12)
    estimate = next(e for e in measure["estimates"] if e["variant"] == "plain")
    mean, low, high, _ = _t_interval(plain)
    assert (estimate["mean"], estimate["low"], estimate["high"]) == pytest.approx((mean, low, high))
    assert (estimate["n_seeds"], estimate["n_censored"], estimate["picked"]) == (3, 0, None)

    # All pairs in variant order: plain - qknorm; the verdict reads it the other way round.
    (comparison,) = measure["comparisons"]
    diff, low, high, p = _t_interval(np.subtract(plain, qknorm).tolist())
    assert (comparison["variant"], comparison["reference"]) == ("plain", "qknorm")
    assert (comparison["diff"], comparison["low"], comparison["high"]) == pytest.approx(
        (diff, low, high)
    )
    assert comparison["p_value"] == pytest.approx(p, rel=1e-6)
    assert comparison["p_holm"] == comparison["p_value"]  # a family of one
    assert low > 0 and comparison["verdict"] == "worse"  # lower is better
    assert (comparison["n_seeds"], comparison["higher_is_better"]) == (3, False)
    # MDE80 over the 3 paired seeds: (t_{0.975, 2} + t_{0.8, 2}) x SE of the mean difference.
    differences = np.subtract(plain, qknorm)
    se = differences.std(ddof=1) / math.sqrt(3)
    mde = (stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * se
    assert comparison["mde80"] == pytest.approx(mde, rel=1e-9)

    summary = _analyze(spec)
    (verdict,) = summary["verdicts"]
    assert summary["verdict"] == verdict
    assert (verdict["status"], verdict["measure"], verdict["claim"]) == (
        "reproduced",
        "lr_sensitivity",
        "c",
    )
    assert verdict["text"] == (
        f"reproduced: qknorm vs plain on lr_sensitivity (lower is better): difference "
        f"{-diff:+.4g} [{-high:+.4g}, {-low:+.4g}] (95% interval; n = 3 seeds); expected better"
        f"; MDE80 = {mde:.4g}: an effect smaller than this would be missed 20% of the time or more"
    )
    assert verdict["mde80"] == comparison["mde80"]


def test_pick_best_takes_each_variants_level_with_the_best_mean_final_loss():
    """plain: lo 4.067, mid 3.5, hi NaN (a diverged seed) -> mid; qknorm: mid 3.433 -> mid.
    steps_to_loss(3.8) at mid: plain [50, 100, 50], qknorm [50, 50, 50]."""
    measures = [{"name": "steps_to_loss", "target": 3.8, "over": "lr", "pick": "best"}]
    expect = {"measure": "steps_to_loss", "variant": "plain", "direction": "worse"}
    (measure,) = _analyze(_spec(measures, expect=expect))["measures"]
    assert measure["description"] == (
        "the first step whose validation loss is at most 3.8 (a run that never reaches it "
        "counts at its max_steps, censored)"
    )
    assert measure["picks"]["plain"]["level"] == measure["picks"]["qknorm"]["level"] == "mid"
    assert measure["picks"]["plain"]["variant"] == "plain+mid"
    means = measure["picks"]["plain"]["mean_final_val_loss"]
    assert (means["lo"], means["mid"]) == pytest.approx(((4.0 + 4.3 + 3.9) / 3, 3.5))
    assert math.isnan(means["hi"])
    values = {(v["variant"], v["seed"]): v["value"] for v in measure["values"]}
    assert [values[("plain", s)] for s in range(3)] == [50.0, 100.0, 50.0]
    assert [values[("qknorm", s)] for s in range(3)] == [50.0, 50.0, 50.0]
    assert [e["picked"] for e in measure["estimates"]] == ["mid", "mid"]
    (comparison,) = measure["comparisons"]  # all pairs of the collapsed variants: just one
    diff, low, high, p = _t_interval([0.0, 50.0, 0.0])
    assert (comparison["variant"], comparison["reference"]) == ("plain", "qknorm")
    assert (comparison["diff"], comparison["low"], comparison["high"]) == pytest.approx(
        (diff, low, high)
    )
    assert comparison["p_value"] == pytest.approx(p, rel=1e-6)
    assert comparison["verdict"] == "inconclusive"
    verdict = _analyze(_spec(measures, expect=expect))["verdict"]
    assert verdict["status"] == "inconclusive"
    assert verdict["text"].endswith(
        "; lr picked by best mean final val loss on the same seeds: plain at mid, qknorm at "
        "mid; expected worse; MDE80 = 89.39: an effect smaller than this would be missed 20% "
        "of the time or more"  # (t_{0.975, 2} + t_{0.8, 2}) x 50 / 3 (the SE of [0, 50, 0])
    )


def test_a_missing_value_drops_its_seed_and_all_pairs_get_holm_adjusted_p_values():
    (measure,) = _analyze(_spec([{"name": "final_val_loss"}]))["measures"]
    names = list(LOSSES)[::3]
    assert [e["variant"] for e in measure["estimates"]] == [name for name, _ in names]
    hi = next(e for e in measure["estimates"] if e["variant"] == "plain+hi")
    assert (hi["n_seeds"], hi["n_dropped"]) == (2, 1)
    assert hi["mean"] == pytest.approx((5.0 + 4.4) / 2)
    comparisons = measure["comparisons"]
    assert len(comparisons) == 15  # all pairs of 6 variants
    first = comparisons[0]
    assert (first["variant"], first["reference"]) == ("plain+lo", "plain+mid")
    diff, low, high, _ = _t_interval([0.5, 0.7, 0.5])
    assert (first["diff"], first["low"], first["high"]) == pytest.approx((diff, low, high))
    with_hi = next(c for c in comparisons if c["reference"] == "plain+hi")
    assert (with_hi["variant"], with_hi["n_seeds"], with_hi["n_dropped"]) == ("plain+lo", 2, 1)
    assert with_hi["diff"] == pytest.approx(((4.0 - 5.0) + (3.9 - 4.4)) / 2)
    decided = [c for c in comparisons if math.isfinite(c["p_value"])]
    assert [c["p_holm"] for c in decided] == pytest.approx(holm([c["p_value"] for c in decided]))


def test_the_holm_correction_puts_a_measures_intervals_at_the_bonferroni_level():
    spec = _spec([{"name": "final_val_loss"}], compare={"correction": "holm"})
    (measure,) = _analyze(spec)["measures"]
    first = measure["comparisons"][0]  # plain+lo - plain+mid, one of 15 pairs
    values = np.array([0.5, 0.7, 0.5])
    half = stats.t.ppf(1 - 0.05 / 15 / 2, 2) * values.std(ddof=1) / math.sqrt(3)
    assert (first["low"], first["high"], first["level"]) == pytest.approx(
        (values.mean() - half, values.mean() + half, 1 - 0.05 / 15)
    )
    assert measure["level"] == 0.95  # the estimates keep the experiment's level


def test_compare_may_name_a_collapsed_variant_and_a_task_expectation_keeps_its_verdict():
    measures = [{"name": "final_val_loss", "over": "lr", "pick": "best"}]
    spec = _spec(measures, compare={"baseline": "qknorm"})
    (measure,) = _analyze(spec)["measures"]
    assert [(c["variant"], c["reference"]) for c in measure["comparisons"]] == [("plain", "qknorm")]
    # An experiment without tasks judges a task expectation as it always did.
    summary = _analyze(_spec(measures, expect={"variant": "plain+lo"}))
    assert summary["verdicts"] == [
        {"status": "inconclusive", "text": "inconclusive: the experiment has no task", "claim": ""}
    ]


def test_steps_to_loss_counts_a_run_that_never_reaches_the_target_at_its_budget():
    spec = _spec([{"name": "steps_to_loss", "target": 3.8, "label": "to_3.8"}])
    table = measure_table(spec, RECORDS).to_pylist()
    by_run = {(row["variant"], row["seed"]): (row["value"], row["censored"]) for row in table}
    assert by_run[("plain+mid", 0)] == (50.0, False)  # 3.8 <= 3.8 at step 50
    assert by_run[("plain+mid", 1)] == (100.0, False)
    assert by_run[("plain+lo", 0)] == (100.0, True)  # never: counted at max_steps
    assert by_run[("plain+hi", 1)] == (100.0, True)  # a NaN loss never reaches it
    assert {row["measure"] for row in table} == {"to_3.8"}
    (measure,) = _analyze(spec)["measures"]
    lo = next(e for e in measure["estimates"] if e["variant"] == "plain+lo")
    assert (lo["mean"], lo["low"], lo["high"], lo["n_censored"]) == (100.0, 100.0, 100.0, 3)
    pair = next(c for c in measure["comparisons"] if c["reference"] == "plain+mid")
    # plain+lo (all 3 censored at 100) - plain+mid (50, 100, 50): a lower bound of the truth
    assert (pair["variant"], pair["n_censored"], pair["diff"]) == ("plain+lo", 3, 100 / 3)


def test_seconds_to_loss_reads_elapsed_s_of_the_first_row_at_the_target():
    """elapsed_s of the row that reaches 3.8; a run that never does counts at its last row's
    seconds (censored); a row without elapsed_s is a missing value."""
    seconds = {"elapsed_s": [7.5, 16.25]}
    records = [
        _record("plain+mid", 0, (3.8, 3.5), **seconds),  # at step 50
        _record("plain+mid", 1, (3.9, 3.6), **seconds),  # at step 100
        _record("plain+lo", 0, (4.3, 4.0), **seconds),  # never
        _record("plain+hi", 1, (4.0, NAN), **seconds),  # a NaN loss never reaches it
        _record("qknorm+mid", 0, (3.75, 3.45)),  # no elapsed_s logged
    ]
    spec = _spec([{"name": "seconds_to_loss", "target": 3.8}])
    table = measure_table(spec, records).to_pylist()
    by_run = {(row["variant"], row["seed"]): (row["value"], row["censored"]) for row in table}
    assert by_run[("plain+mid", 0)] == (7.5, False)
    assert by_run[("plain+mid", 1)] == (16.25, False)
    assert by_run[("plain+lo", 0)] == (16.25, True)
    assert by_run[("plain+hi", 1)] == (16.25, True)
    value, censored = by_run[("qknorm+mid", 0)]
    assert math.isnan(value) and not censored
    assert spec.measures[0].higher_is_better is False
    assert spec.measures[0].describe() == (
        "training seconds (elapsed_s) to the first validation loss at most 3.8 (a run that "
        "never reaches it counts at its training seconds, censored)"
    )


def test_metric_reduces_a_logged_field_and_run_field_reads_a_runs_table_column():
    record = _record("plain+lo", 0, (4.0, 3.0, 3.5), attn_logit_max=[2.0, 7.0, 5.0])
    records = [record]
    measures = [
        {
            "name": "metric",
            "field": "attn_logit_max",
            "reduce": r,
            "higher_is_better": False,
            "label": r,
        }  # fmt: skip
        for r in ("last", "max", "min", "mean")
    ]
    measures += [
        {"name": "run_field", "field": f, "higher_is_better": False, "label": f}
        for f in ("params_total", "optimizer_state_bytes")  # runs.parquet, then run_info.json
    ]
    table = measure_table(_spec(measures), records).to_pylist()
    assert [(row["measure"], row["value"]) for row in table] == [
        ("last", 5.0),
        ("max", 7.0),
        ("min", 2.0),
        ("mean", pytest.approx(14.0 / 3)),
        ("params_total", 1000.0),  # the runs table's column wins over run_info.json's
        ("optimizer_state_bytes", 4096.0),
    ]


@pytest.mark.parametrize(
    ("measure", "message"),
    [
        (
            {"name": "metric", "field": "nope", "higher_is_better": True},
            r"measure 'metric': run plain\+lo/0 \(plain\+lo, seed 0\) logged no 'nope' in "
            r"metrics.jsonl \(it logged \['step', 'tokens', 'val_loss'\]\); fix measures.field",
        ),
        (
            {"name": "run_field", "field": "nope", "higher_is_better": True},
            r"measure 'run_field': run plain\+lo/0 \(plain\+lo, seed 0\) has no 'nope' in "
            r"results/runs.parquet or run_info.json; choose one of \['final_val_loss', "
            r"'optimizer_state_bytes'",
        ),
        (
            {"name": "run_field", "field": "variant", "higher_is_better": True},
            r"measure 'run_field': 'variant' of run plain\+lo/0 \(plain\+lo, seed 0\) is "
            r"'plain\+lo', not a number; choose a numeric field",
        ),
    ],
)
def test_a_field_no_run_has_or_not_a_number_is_a_one_line_error(measure, message):
    with pytest.raises(ValueError, match=message):
        measure_table(_spec([measure]), RECORDS[:1])


def test_a_measure_of_some_variants_reads_only_their_runs():
    # Only the qknorm runs log the field, as only moe runs log a router's statistics.
    records = [
        _record(v, s, losses, **({"spec": [0.0, s + 1.0]} if v.startswith("qknorm") else {}))
        for (v, s), losses in LOSSES.items()
    ]
    measure = {"name": "metric", "field": "spec", "higher_is_better": True}
    with pytest.raises(ValueError, match=r"run plain\+lo/0 \(plain\+lo, seed 0\) logged no 'spec'"):
        measure_table(_spec([measure]), records)
    some = {**measure, "variants": ["qknorm+lo", "qknorm+hi"]}
    spec = _spec([some])
    assert {
        (r["variant"], r["seed"], r["value"]) for r in measure_table(spec, records).to_pylist()
    } == {(v, s, s + 1.0) for v in ("qknorm+lo", "qknorm+hi") for s in (0, 1, 2)}
    (summary,) = _analyze(spec, records)["measures"]
    assert summary["variants"] == {"qknorm+lo": ["qknorm+lo"], "qknorm+hi": ["qknorm+hi"]}
    assert [e["variant"] for e in summary["estimates"]] == ["qknorm+lo", "qknorm+hi"]
    assert [(c["variant"], c["reference"]) for c in summary["comparisons"]] == [
        ("qknorm+lo", "qknorm+hi")
    ]
    # Collapsing an axis groups only the variants read.
    picked = _spec([{"name": "final_val_loss", "over": "lr", "pick": "best", "variants": [
        "plain+lo", "qknorm+lo", "qknorm+mid"]}])  # fmt: skip
    assert picked.measure_variants(picked.measures[0]) == {
        "plain": ["plain+lo"],
        "qknorm": ["qknorm+lo", "qknorm+mid"],
    }


def test_a_run_without_validation_loss_is_refused_by_loss_measures():
    record = RunRecord({**RECORDS[0].summary}, [{"step": 100, "train_loss": 3.0}], CONFIG)
    with pytest.raises(ValueError, match=r"logged no val_loss; a loss-based measure needs"):
        measure_table(_spec([{"name": "lr_sensitivity", "over": "lr"}]), [record])


def _config_error(**fields) -> str:
    data = {"name": "m", "axes": AXES, "seeds": [0, 1], **fields}
    with pytest.raises(ConfigError) as caught:
        validate(ExperimentSpec, data)
    return str(caught.value)


LR = {"name": "lr_sensitivity", "over": "lr"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"measures": [{"name": "lr_sensitivity", "over": "size"}]},
            "measures.0 (lr_sensitivity): over 'size' is not an axis; choose one of ['norm', 'lr']",
        ),
        (
            {"measures": [{"name": "lr_sensitivity", "axis": "lr"}]},
            "measures.0.axis: unknown field (value 'lr'); remove it or fix its spelling",
        ),
        (
            {"measures": [{**LR, "stage": "finetune"}]},
            "measures.0 (lr_sensitivity): stage 'finetune' is not one of ['pretrain']",
        ),
        (
            {"measures": [LR, LR]},
            "measures ['lr_sensitivity', 'lr_sensitivity'] repeat a label; give each a "
            "distinct label",
        ),
        (
            {"measures": [{"name": "final_val_loss", "variants": ["plain", "qknorm+lo"]}]},
            "measures.0 (final_val_loss): variants ['plain'] are not variants of the "
            "experiment; choose from ['plain+lo', 'plain+mid', 'plain+hi', 'qknorm+lo', "
            "'qknorm+mid', 'qknorm+hi']",
        ),
        (
            {"measures": [{"name": "final_val_loss", "variants": []}]},
            "measures.0 (final_val_loss): variants is empty; name the variants it reads, or "
            "leave it out (all variants)",
        ),
        (
            {"measures": [{"name": "lr_sensitivity"}]},
            "measures.0: measure 'lr_sensitivity' is defined over a sweep; name the swept "
            "axis with over: AXIS",
        ),
        (
            {"measures": [{**LR, "pick": "best"}]},
            "measures.0: measure 'lr_sensitivity' uses every level of over: lr; remove pick",
        ),
        (
            {"measures": [{"name": "final_val_loss", "over": "lr"}]},
            "measures.0: measure 'final_val_loss': over: lr needs pick: best (the level with "
            "the best mean final validation loss over seeds); or remove over",
        ),
        (
            {"measures": [{"name": "final_val_loss", "pick": "best"}]},
            "measures.0: measure 'final_val_loss': pick needs over: AXIS (the axis to pick from)",
        ),
        (
            {"measures": [{"name": "metric", "field": "attn_logit_max"}]},
            "measures.0: measure 'metric' needs higher_is_better: true or false (whether a "
            "larger value is better); a verdict needs the direction",
        ),
        (
            {"measures": [{"name": "final_val_loss", "higher_is_better": True}]},
            "measures.0: measure 'final_val_loss' is lower-is-better; higher_is_better=True "
            "contradicts it, leave higher_is_better out",
        ),
        (
            {"measures": [{"name": "nope"}]},
            "measures.0: unknown measure 'nope'; expected one of ['final_val_loss', "
            "'grokking_step', 'lr_sensitivity', 'metric', 'run_field', 'seconds_to_loss',"
            " 'steps_to_loss']",
        ),
        (
            {"measures": [LR], "expect": {"measure": "lr_sens", "variant": "plain"}},
            "expect measure 'lr_sens' is not one of the measures ['lr_sensitivity']; add it "
            "to measures or fix the label",
        ),
        (
            {"measures": [LR], "expect": {"measure": "lr_sensitivity", "variant": "plain+lo"}},
            "variant 'plain+lo' (in expect) is not one of ['plain', 'qknorm'], the variants "
            "of measure 'lr_sensitivity'",
        ),
        (
            {"expect": [{"variant": "plain+lo"}, {"variant": "plain+lo", "reference": "plain"}]},
            "variant 'plain' (in expect) is not one of ['plain+hi', 'plain+lo', 'plain+mid', "
            "'qknorm+hi', 'qknorm+lo', 'qknorm+mid'], the variants of the experiment",
        ),
        (
            {"expect": [{"variant": "plain+lo"}, {"variant": "plain+lo", "colour": "red"}]},
            "expect.1.colour: unknown field (value 'red'); remove it or fix its spelling",
        ),
        (
            {"expect": {"variant": "plain+lo", "task": "t", "measure": "m"}},
            "expect: names task 't' and measure 'm'; an expectation is judged on one of them, "
            "so keep one (or write two expectations)",
        ),
        (
            {"expect": {"variant": "plain+lo", "reference": "plain+lo"}},
            "expect: reference 'plain+lo' is its variant; name the other side of the comparison",
        ),
        (
            {"measures": [LR], "compare": {"baseline": "nope"}},
            "variant 'nope' (in compare) is not one of ['plain', 'plain+hi', 'plain+lo', "
            "'plain+mid', 'qknorm', 'qknorm+hi', 'qknorm+lo', 'qknorm+mid']",
        ),
    ],
)
def test_inconsistent_measures_and_expectations_fail_in_one_line(fields, message):
    assert _config_error(**fields) == message


def test_expect_keeps_its_shape_and_collapsing_the_only_axis_leaves_one_variant():
    one = _spec([], expect={"variant": "plain+lo", "claim": "c"})
    assert isinstance(one.expect, ExpectSpec) and one.expectations == [one.expect]
    assert one.to_dict()["expect"] == {
        "variant": "plain+lo",
        "direction": "better",
        "task": None,
        "metric": None,
        "measure": None,
        "reference": None,
        "value": None,
        "margin": None,
        "claim": "c",
    }
    many = _spec(
        [LR], expect=[{"variant": "plain+lo"}, {"measure": LR["name"], "variant": "plain"}]
    )
    assert [e.variant for e in many.expectations] == ["plain+lo", "plain"]
    assert ExperimentSpec.model_validate(many.to_dict()) == many
    assert _config_error(expect={"variant": "plain+lo", "colour": "red"}) == (
        "expect.colour: unknown field (value 'red'); remove it or fix its spelling"
    )
    spec = ExperimentSpec.model_validate(
        {"name": "m", "axes": {"lr": {"a": {}, "b": {}}}, "measures": [LR]}
    )
    assert spec.measure_variants(spec.measures[0]) == {"all": ["a", "b"]}


def test_one_seed_gives_a_mean_without_interval_and_an_inconclusive_verdict():
    expect = {"measure": "final_val_loss", "variant": "plain+lo", "reference": "plain+mid"}
    spec = _spec(
        [{"name": "final_val_loss"}],
        seeds=[0],
        compare={"pairs": [["plain+lo", "plain+mid"]]},
        expect=expect,
    )
    summary = _analyze(spec, [r for r in RECORDS if r.summary["seed"] == 0])
    (measure,) = summary["measures"]
    lo = measure["estimates"][0]
    assert (lo["variant"], lo["mean"], lo["n_seeds"]) == ("plain+lo", 4.0, 1)
    assert math.isnan(lo["low"]) and math.isnan(lo["high"])
    (comparison,) = measure["comparisons"]
    assert (comparison["diff"], comparison["n_seeds"], comparison["verdict"]) == (
        pytest.approx(0.5),
        1,
        "inconclusive",
    )
    assert math.isnan(comparison["p_value"]) and math.isnan(comparison["p_holm"])
    assert math.isnan(comparison["mde80"])  # no power to state from one seed: no MDE80 in text
    assert summary["verdict"]["status"] == "inconclusive"
    assert summary["verdict"]["text"] == (
        "inconclusive: plain+lo vs plain+mid on final_val_loss (lower is better): difference "
        "+0.5 (no interval from n = 1 seed); expected better"
    )


def test_measures_and_expectations_leave_the_planned_runs_and_their_keys_unchanged(tmp_path):
    base = {"name": "m", "base": tiny_base(3), "axes": {"lr": {"lo": {}, "hi": {}}}}
    measured = {
        **base,
        "measures": [LR, {"name": "final_val_loss"}],
        "expect": [{"measure": "final_val_loss", "variant": "lo", "reference": "hi"}],
    }
    plans = [plan_experiment(ExperimentSpec.model_validate(d), tmp_path) for d in (base, measured)]
    assert [run.key for run in plans[0].runs] == [run.key for run in plans[1].runs]
    assert plans[1].evals == []


def test_a_deterministic_measure_gives_a_zero_width_interval_and_a_decided_verdict():
    """A size in bytes is the same on every seed: the estimates and the difference have zero
    width, p is 0 (1 for no difference), and the verdict follows the sign, saying why."""
    size = {"plain": 1000, "qknorm": 600}
    records = [
        RunRecord({**r.summary, "state": size[r.summary["variant"].split("+")[0]]}, [], CONFIG)
        for r in RECORDS
    ]
    measure = {"name": "run_field", "field": "state", "higher_is_better": False}
    expect = {"measure": "run_field", "variant": "qknorm", "reference": "plain"}
    spec = _spec([{**measure, "over": "lr", "pick": "best"}], expect=expect)
    summary = _analyze(spec, records)
    (result,) = summary["measures"]
    assert [(e["variant"], e["mean"], e["low"], e["high"]) for e in result["estimates"]] == [
        ("plain", 1000.0, 1000.0, 1000.0),
        ("qknorm", 600.0, 600.0, 600.0),
    ]
    (comparison,) = result["comparisons"]
    assert (comparison["variant"], comparison["reference"]) == ("plain", "qknorm")
    assert (comparison["diff"], comparison["low"], comparison["high"]) == (400.0, 400.0, 400.0)
    assert (comparison["p_value"], comparison["p_holm"], comparison["verdict"]) == (
        0.0,
        0.0,
        "worse",
    )
    assert summary["verdict"]["status"] == "reproduced"
    assert summary["verdict"]["text"] == (
        "reproduced: qknorm vs plain on run_field (lower is better): difference -400 "
        "[-400, -400] (95% interval; n = 3 seeds); the same difference on every seed, so the "
        "interval has zero width; lr picked by best mean final val loss on the same seeds: "
        "qknorm at mid, plain at mid; expected better"
    )
    # No difference at all: inconclusive, p = 1.
    same = [RunRecord({**r.summary, "state": 1000}, [], CONFIG) for r in RECORDS]
    (comparison,) = _analyze(spec, same)["measures"][0]["comparisons"]
    assert (comparison["diff"], comparison["low"], comparison["high"]) == (0.0, 0.0, 0.0)
    assert (comparison["p_value"], comparison["verdict"]) == (1.0, "inconclusive")
