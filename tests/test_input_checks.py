"""Mistakes fail before any work, in one line (``error: ...``, exit 2): config files that are
empty, directories or bad YAML, negative seeds, names that are not folder names, unknown
executors and job counts, metrics no task declares, runs too large for the machine, resumes that
would change the run, and world tasks on runs that never saw a world."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import TINY_RUN
from transferlab.cli import app
from transferlab.config import ConfigError, ObjectiveConfig, RunConfig, load_config, validate
from transferlab.experiment import ExperimentSpec, plan_experiment, run_experiment
from transferlab.models import count_parameters
from transferlab.train import memory, train

runner = CliRunner()


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def run_yaml(tmp_path: Path) -> Path:
    trainer_cfg = {**TINY_RUN["trainer"], "max_steps": 4, "out_dir": str(tmp_path / "runs")}
    return _write(tmp_path / "run.yaml", {**TINY_RUN, "trainer": trainer_cfg})


# ------------------------------------------------------------------------------ config files
@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_an_empty_config_file_is_refused_not_read_as_defaults(tmp_path, text) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"empty.yaml: the file is empty; write the config's"):
        load_config(RunConfig, path)
    line = _one_error_line(runner.invoke(app, ["train", str(path)]))
    assert "the file is empty" in line
    assert not (Path("runs") / "run").exists()


def test_a_directory_given_as_config_file_is_named_as_one(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory; pass the path of a YAML file"):
        load_config(RunConfig, tmp_path)
    line = _one_error_line(runner.invoke(app, ["run", str(tmp_path), "--dry-run"]))
    assert (
        line == f"error: config file {str(tmp_path)!r} is a directory; pass the path of a YAML file"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("model:\n  d_model: 32\n   n_layers: 2\n", "line 3, column 12: mapping values are not"),
        ("seed: 1\ntrainer: {max_steps: 4\n", "line 3, column 1: expected ',' or '}'"),
        ("name: 'open\n", "line 2, column 1: found unexpected end of stream"),
    ],
)
def test_yaml_syntax_errors_give_their_line_and_column(tmp_path, text, where) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(RunConfig, path)
    assert str(info.value).startswith(f"{path}: not valid YAML ({where}")
    assert where in _one_error_line(runner.invoke(app, ["config", str(path)]))


# ---------------------------------------------------------------------------- fields and names
@pytest.mark.parametrize("field", ["seed", "world.seed", "data.mixture.seed"])
def test_a_negative_seed_is_refused_naming_its_field(field) -> None:
    overrides = [f"{field}=-3"]
    if field.startswith("data.mixture"):
        overrides.append("data.sources=[{name: python_stdlib, modules: [json]}]")
    with pytest.raises(ConfigError, match=rf"^{field}: got -3; expected greater than or equal"):
        load_config(RunConfig, None, overrides)


def test_a_negative_experiment_seed_is_refused_naming_its_position() -> None:
    with pytest.raises(ConfigError, match=r"^seeds.1: got -1; expected greater than or equal to 0"):
        validate(ExperimentSpec, {"name": "x", "base": TINY_RUN, "seeds": [0, -1]})


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "/abs", ""])
def test_an_experiment_name_that_is_no_plain_folder_name_writes_nothing(
    tmp_path, monkeypatch, name
) -> None:
    path = _write(tmp_path / "exp.yaml", {"name": name, "base": TINY_RUN})
    work = tmp_path / "cwd" / "in"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # experiments/../../x would land in tmp_path
    line = _one_error_line(runner.invoke(app, ["run", str(path), "--dry-run"]))
    assert line.startswith(f"error: name: got {name!r}; expected a plain folder name for the ")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cwd", "exp.yaml", "in"]


def test_a_run_name_that_is_no_plain_folder_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^name: got '../x'; expected a plain folder name"):
        load_config(RunConfig, None, ["name=../x"])


def test_plain_names_are_accepted() -> None:
    for name in ("knowledge-augmentation", "run_1", "v2.0", "A"):
        assert validate(ExperimentSpec, {"name": name}).name == name
        assert load_config(RunConfig, None, [f"name={name}"]).name == name


# -------------------------------------------------------------------------- executors and jobs
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "slurm"], "error: --executor 'slurm' is unknown; use one of local, ray"),
        (["--jobs", "0"], "error: --jobs 0: expected at least 1 (runs trained in parallel)"),
    ],
)
def test_unknown_executor_and_too_few_jobs_fail_before_any_work(tmp_path, args, message) -> None:
    path = _write(tmp_path / "exp.yaml", {"name": "exec", "base": TINY_RUN})
    exp_dir = tmp_path / "exp"
    assert _one_error_line(
        runner.invoke(app, ["run", str(path), "--out", str(exp_dir), *args])
    ) == (message)
    assert not exp_dir.exists()
    spec = validate(ExperimentSpec, {"name": "exec", "base": TINY_RUN})
    with pytest.raises(ValueError, match=re.escape(message.removeprefix("error: "))):
        run_experiment(
            spec,
            exp_dir,
            jobs=int(args[1]) if args[0] == "--jobs" else 1,
            executor=args[1] if args[0] == "--executor" else "local",
        )
    assert not exp_dir.exists()


def test_a_compare_metric_no_task_declares_fails_on_the_command_line(tmp_path) -> None:
    spec = {"name": "m", "base": TINY_RUN, "tasks": [{"name": "qa_probe"}]}
    path = _write(tmp_path / "exp.yaml", {**spec, "compare": {"metric": "bleu"}})
    line = _one_error_line(runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "e")]))
    assert line.startswith("error: compare.metric 'bleu' is declared by no task (the tasks ")
    assert not (tmp_path / "e").exists()


# ---------------------------------------------------------------------------------- memory
def test_the_memory_estimate_counts_parameters_gradients_optimizer_and_activations(
    tiny_config,
) -> None:
    cfg = tiny_config("model.vocab_size=500")
    params = count_parameters(cfg.model).total
    one, four = memory.estimate_memory(cfg, 1), memory.estimate_memory(cfg, 4)
    assert (one.parameters, one.gradients, one.optimizer) == (4 * params, 4 * params, 8 * params)
    assert four.activations == 4 * one.activations > 0
    assert four.total == 16 * params + four.activations
    longer = memory.estimate_memory(tiny_config("model.vocab_size=500", "data.seq_len=64"), 1)
    assert longer.activations == 2 * one.activations


def test_sharding_over_ranks_divides_the_training_state_but_not_the_gathered_unit(tiny_config):
    """FSDP2 over 4 ranks: a quarter of the weights, gradients and moments, plus the whole
    embedding (the root unit) and one block's weights and gradients while they compute."""
    cfg = tiny_config("model.vocab_size=500", "model.n_layers=4")
    counts = count_parameters(cfg.model)
    whole, sharded = memory.estimate_memory(cfg, 1), memory.estimate_memory(cfg, 1, shards=4)
    held = -(-counts.total // 4) + counts.embedding + counts.non_embedding // 4
    assert (sharded.parameters, sharded.gradients) == (4 * held, 4 * held)
    assert sharded.optimizer == 8 * -(-counts.total // 4) < whole.optimizer / 3.9
    assert sharded.activations == whole.activations and sharded.total < whole.total


def test_the_host_has_memory_to_report() -> None:
    free = memory.available_memory(torch.device("cpu"))
    assert free is not None and free > 0


def test_a_run_too_large_for_the_machine_is_refused_before_the_model_is_built(
    tiny_config, monkeypatch
) -> None:
    def no_model(*_: object) -> None:
        raise AssertionError("the model was built")

    monkeypatch.setattr(ObjectiveConfig, "build_networks", no_model)
    cfg = tiny_config("model.d_model=65536")  # half a terabyte of weights and moments
    with pytest.raises(ConfigError) as info:
        train(cfg)
    message = str(info.value)
    assert message.startswith("the run needs about ") and "\n" not in message
    assert "for a micro batch of 8 x 32 tokens" in message
    assert message.endswith(
        "lower trainer.micro_batch_size (activations scale with it) or the model's size"
    )
    assert not (Path(cfg.trainer.out_dir) / cfg.name / "checkpoints").exists()


def test_the_refusal_is_one_cli_line_and_a_smaller_micro_batch_fits(
    run_yaml, tiny_config, monkeypatch
) -> None:
    vocab = ["model.vocab_size=1000"]  # explicit, so the estimate is known before the data
    whole, micro = (memory.estimate_memory(tiny_config(*vocab), n).total for n in (8, 1))
    monkeypatch.setattr(memory, "available_memory", lambda device: (whole + micro) // 2)
    line = _one_error_line(runner.invoke(app, ["train", str(run_yaml), *vocab]))
    assert line.startswith("error: the run needs about ") and "GiB is free" in line
    assert "for a micro batch of 8 x 32 tokens" in line
    smaller = ["trainer.micro_batch_size=1", "trainer.max_steps=2", "schedule.warmup_steps=1"]
    ok = runner.invoke(app, ["train", str(run_yaml), *vocab, *smaller])
    assert ok.exit_code == 0, ok.output


# ---------------------------------------------------------------------------------- resume
def test_resume_with_overrides_that_change_the_run_needs_allow_changes(run_yaml, tmp_path):
    assert runner.invoke(app, ["train", str(run_yaml)]).exit_code == 0
    stored = tmp_path / "runs" / "tiny" / "config.yaml"
    before = stored.read_bytes()
    refused = runner.invoke(app, ["train", str(run_yaml), "trainer.max_steps=6", "--resume"])
    assert _one_error_line(refused) == (
        f"error: resuming {tmp_path / 'runs' / 'tiny'} would change trainer.max_steps from 4 to "
        "6; pass --allow-changes to resume with the change (trainer fields that leave the "
        "result alone only), or drop the override"
    )
    assert stored.read_bytes() == before
    # A field that changes the result is refused even when changes are allowed.
    lr = ["optimizer.lr=0.01", "--resume", "--allow-changes"]
    assert "optimizer.lr is 0.01" in _one_error_line(
        runner.invoke(app, ["train", str(run_yaml), *lr])
    )
    assert stored.read_bytes() == before
    # The same config resumes as it is; an allowed change rewrites config.yaml.
    assert runner.invoke(app, ["train", str(run_yaml), "--resume"]).exit_code == 0
    assert stored.read_bytes() == before
    longer = ["trainer.max_steps=6", "--resume", "--allow-changes"]
    assert runner.invoke(app, ["train", str(run_yaml), *longer]).exit_code == 0
    assert yaml.safe_load(stored.read_text())["trainer"]["max_steps"] == 6
    assert _one_error_line(runner.invoke(app, ["train", str(run_yaml), "--allow-changes"])) == (
        "error: --allow-changes only applies with --resume"
    )


def test_resume_may_show_its_progress_differently(tiny_config) -> None:
    train(tiny_config(), stop_after=2)
    assert train(tiny_config("trainer.progress=true"), resume=True).steps == 8


# ------------------------------------------------------------------------------ world tasks
def _sources_spec(tmp_path: Path, **extra: object) -> dict:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(20)))
    base = {**TINY_RUN, "data": {**TINY_RUN["data"], "sources": [{"path": str(corpus)}]}}
    return {"name": "real", "base": base, **extra}


def test_a_world_task_on_runs_pretrained_without_the_world_is_refused(tmp_path) -> None:
    spec = validate(ExperimentSpec, _sources_spec(tmp_path, tasks=[{"name": "qa_score"}]))
    with pytest.raises(ConfigError) as info:
        plan_experiment(spec, store=tmp_path / "store")
    assert str(info.value) == (
        "task 'qa_score' asks about the 'bios' world, but run variant 'base' (stage pretrain) "
        "pretrains on data.sources/data.path, not on that world; drop the task or pretrain a "
        "stage on the world (no data.sources)"
    )
    assert not (tmp_path / "store").exists()


def test_world_tasks_may_read_a_stage_continued_from_a_world_run(tmp_path) -> None:
    real = _sources_spec(tmp_path)["base"]["data"]
    stages = [{"name": "pretrain"}, {"name": "cont", "overrides": {"data": real}}]
    world_base = {**TINY_RUN}
    spec = validate(
        ExperimentSpec,
        {"name": "cpt", "base": world_base, "stages": stages, "tasks": [{"name": "qa_probe"}]},
    )
    plan = plan_experiment(spec, store=tmp_path / "store")
    assert [run.stage for run in plan.runs] == ["pretrain", "cont"]
    assert plan.runs[1].config.data.sources
