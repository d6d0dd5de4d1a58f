"""The command line end to end: world build, train (+ resume), export-hf, config errors,
experiments with results in three formats, recipes."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import TINY_RUN
from transferlab.cli import app
from transferlab.experiment import load_experiment, plan_experiment
from transferlab.recipes import list_recipes

runner = CliRunner()


@pytest.fixture
def run_yaml(tmp_path):
    data = {**TINY_RUN, "trainer": {**TINY_RUN["trainer"], "out_dir": str(tmp_path / "runs")}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_world_build_writes_corpus_qa_and_truth_table(run_yaml, tmp_path):
    out = tmp_path / "world"
    result = runner.invoke(
        app, ["world", "build", str(run_yaml), "world.num_people=12", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"world: {out}" in result.output
    people = pq.read_table(out / "people.parquet")
    assert people.num_rows == 12
    qa = [json.loads(line) for line in (out / "qa.jsonl").read_text().splitlines()]
    assert len(qa) == 12 * 6
    assert (out / "COMPLETE").is_file()


def test_train_then_resume_then_export(run_yaml, tmp_path):
    result = runner.invoke(app, ["train", str(run_yaml), "trainer.max_steps=4"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tiny"
    assert f"run: {run_dir}" in result.output.replace("\n", "")
    info = json.loads((run_dir / "run_info.json").read_text())
    assert (
        f"parameters: {info['params_total']:,} ({info['params_non_embedding']:,} " in result.output
    )
    assert f"{info['flops_per_token']:,} training FLOPs/token; 1,024 tokens in 4 steps" in (
        result.output
    )

    again = runner.invoke(app, ["train", str(run_yaml), "trainer.max_steps=4"])
    assert again.exit_code == 2
    assert "already has checkpoints" in again.output and "--resume" in again.output

    longer = runner.invoke(
        app, ["train", str(run_yaml), "trainer.max_steps=8", "--resume", "--allow-changes"]
    )
    assert longer.exit_code == 0, longer.output
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 8

    out = tmp_path / "hf"
    exported = runner.invoke(app, ["export-hf", str(run_dir), str(out)])
    assert exported.exit_code == 0, exported.output
    from transformers import AutoModelForCausalLM

    from transferlab.train import load_run

    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    ours = load_run(run_dir).model
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids), atol=1e-4)


def test_train_from_another_run_writes_its_own_directory(run_yaml, tmp_path):
    parent = tmp_path / "runs" / "tiny"
    assert runner.invoke(app, ["train", str(run_yaml)]).exit_code == 0
    args = ["train", str(run_yaml), "name=child", "schedule.warmup_steps=1", "--from", str(parent)]
    child = runner.invoke(app, [*args, "--from-step", "4", "--with-optimizer"])
    assert child.exit_code == 0, child.output
    stored = yaml.safe_load((tmp_path / "runs" / "child" / "config.yaml").read_text())
    assert stored["init"] == {"from_run": str(parent), "step": 4, "optimizer": True}
    assert (
        json.loads((parent / "run_info.json").read_text())["config_key"]
        != json.loads((tmp_path / "runs" / "child" / "run_info.json").read_text())["config_key"]
    )

    own = runner.invoke(app, ["train", str(run_yaml), "--from", str(parent)])
    assert own.exit_code == 2
    assert "is this run's own directory; a child writes its own run directory" in own.output
    missing = runner.invoke(
        app, [*args[:3], "name=other", "--from", str(parent), "--from-step", "3"]
    )
    assert missing.exit_code == 2
    assert "has no complete checkpoint of step 3; available steps: [4, 8]" in missing.output
    alone = runner.invoke(app, ["train", str(run_yaml), "--with-optimizer"])
    assert alone.exit_code == 2 and "--with-optimizer need --from RUN_DIR" in alone.output


def test_bad_config_value_is_one_line_naming_field_and_value(run_yaml):
    result = runner.invoke(app, ["train", str(run_yaml), "model.d_model=abc"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "error: model.d_model: got 'abc'; expected a valid integer, unable to parse string as "
        "an integer"
    ]


def test_config_command_prints_resolved_preset(run_yaml):
    result = runner.invoke(app, ["config", str(run_yaml), "model.preset=tiny"])
    assert result.exit_code == 0, result.output
    model = yaml.safe_load(result.output)["model"]
    assert (model["preset"], model["d_model"], model["n_layers"]) == ("tiny", 32, 1)


def test_run_experiment_and_read_results_as_table_csv_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    spec = {
        "name": "cli-exp",
        "base": {**TINY_RUN, "trainer": {**TINY_RUN["trainer"], "max_steps": 3}},
        "axes": {"lr": {"low": {"optimizer.lr": 1e-4}, "high": {"optimizer.lr": 1e-2}}},
        "seeds": [0],
        "tasks": [{"name": "qa_probe", "max_iter": 10}],
        "compare": {"baseline": "low"},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    exp_dir = tmp_path / "exp"

    dry = runner.invoke(app, ["run", str(path), "--out", str(exp_dir), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "estimated time" in dry.output and "todo" in dry.output
    assert not (exp_dir / "summary.json").exists()

    result = runner.invoke(app, ["run", str(path), "--out", str(exp_dir)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert f"report: {exp_dir / 'report.html'}" in lines
    assert lines[-1].startswith("verdict: no expectation stated")
    assert result.output.count("verdict: ") == 1  # the summary's line, not repeated

    as_json = json.loads(runner.invoke(app, ["results", str(exp_dir), "--format", "json"]).output)
    as_csv = list(
        csv.DictReader(
            io.StringIO(runner.invoke(app, ["results", str(exp_dir), "--format", "csv"]).output)
        )
    )
    assert len(as_json) == len(as_csv) > 0
    assert {e["variant"] for e in as_json} == {"low", "high"}
    assert [float(r["mean"]) for r in as_csv] == pytest.approx([e["mean"] for e in as_json])
    table = runner.invoke(app, ["results", str(exp_dir)])
    assert table.exit_code == 0 and "high" in table.output and "low" in table.output
    bad = runner.invoke(app, ["results", str(exp_dir), "--format", "xml"])
    assert bad.exit_code == 2 and "--format 'xml' is unknown" in bad.output


def test_an_invalid_variant_fails_in_one_line_before_any_work(tmp_path):
    spec = {"name": "bad", "base": TINY_RUN, "axes": {"a": {"x": {"model.d_model": 33}}}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "exp"), "--dry-run"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: base + variant overrides {'model.d_model': 33}: model: d_model=33 is not "
        "divisible by n_heads=2"
    ]


def test_recipes_list_and_show():
    listed = runner.invoke(app, ["recipes", "list"])
    assert listed.exit_code == 0 and "knowledge-augmentation" in listed.output
    shown = runner.invoke(app, ["recipes", "show", "knowledge-augmentation"])
    assert "rephrasings" in shown.output
    missing = runner.invoke(app, ["recipes", "show", "nope"])
    assert missing.exit_code == 2 and "no recipe named 'nope'" in missing.output


@pytest.mark.parametrize("info", list_recipes(), ids=lambda info: info.name)
def test_every_recipe_preset_plans_valid_runs_and_states_its_claim(info, tmp_path):
    assert info.claim and info.presets
    for preset in info.presets:
        spec = load_experiment(info.path, preset)
        plan = plan_experiment(spec, store=tmp_path)  # validates every run's config
        sizes = len(spec.size_ladder())  # 1 without sizes
        assert len(plan.runs) == len(spec.variant_names()) * len(spec.seeds) * sizes >= 4
        assert len({run.key for run in plan.runs}) == len(plan.runs)
        assert spec.expectations  # stated before it runs
        assert spec.paper  # the scoreboard names it
        for expect in spec.expectations:  # each names its task or measure and a variant of it
            if expect.decision is not None:  # a claim on the size ladder: the task it reads
                assert spec.sizes and spec.expectation_task(expect) in spec_tasks(spec)
            elif expect.measure is None:
                assert expect.variant in spec.variant_names()
                assert expect.task in spec_tasks(spec)
            else:
                assert expect.variant in spec.measure_variants(spec.measure(expect.measure))


def spec_tasks(spec) -> list[str]:
    return [task.task_name for task in spec.tasks]


def test_transferlab_warnings_print_as_one_line_and_others_keep_their_location(monkeypatch):
    import warnings

    from transferlab import cli
    from transferlab.data import DataWarning

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after
    monkeypatch.setattr(cli, "app", lambda: None)
    cli.main()  # the console script's entry point installs the format
    shown = warnings.formatwarning("domain 'en' is repeated", DataWarning, "prepare.py", 47)
    assert shown == "warning: domain 'en' is repeated\n"
    other = warnings.formatwarning("old API", FutureWarning, "lib.py", 3, line="call()")
    assert other == "lib.py:3: FutureWarning: old API\n  call()\n"
