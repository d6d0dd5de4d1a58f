"""The downstream callback: its rows at a step are what the task gives on that step's
checkpoint, a resumed run writes the rows an uninterrupted one does, training is unchanged by
it, and a bad config fails before any training."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from transferlab.config import ConfigError
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate import QaScoreConfig
from transferlab.evaluate.downstream import DownstreamConfig, read_downstream
from transferlab.train import load_run, read_metrics, train

QA_SCORE = "{name: qa_score, n_choices: 4}"


def _downstream(every: int, tasks: str = f"[{QA_SCORE}]") -> str:
    return f"trainer.callbacks=[{{name: downstream, every: {every}, tasks: {tasks}}}]"


def _by_step(rows: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for row in rows:
        out.setdefault(row["step"], []).append({k: v for k, v in row.items() if k != "step"})
    return out


def test_rows_at_each_step_equal_the_task_run_on_that_steps_checkpoint(tiny_config):
    # every=3 of 8 steps: steps 3 and 6, and the last step; a checkpoint at every step.
    cfg = tiny_config(_downstream(3), "trainer.checkpoint_interval=1", "trainer.keep_checkpoints=8")
    result = train(cfg)
    rows = _by_step(read_downstream(result.run_dir))
    assert sorted(rows) == [3, 6, 8]

    task_cfg = QaScoreConfig(n_choices=4)
    world = cfg.world.build()
    for step, stored in rows.items():
        loaded = load_run(result.run_dir, step=step)
        tokenizer = TextTokenizer.from_file(loaded.tokenizer_path)
        direct = task_cfg.build().run(loaded.model, tokenizer, world, cfg.name, cfg.seed, "causal")
        assert len(stored) == len(direct) == 20 * 6  # 20 QA-test people x six attributes
        assert stored == direct  # every column, the metrics exactly


def test_the_callback_leaves_training_unchanged(tiny_config):
    with_rows = read_metrics(train(tiny_config(_downstream(2))).run_dir / "metrics.jsonl")
    plain = read_metrics(train(tiny_config("name=plain")).run_dir / "metrics.jsonl")
    losses = [(r["step"], r["train_loss"], r.get("val_loss")) for r in with_rows]
    assert losses == [(r["step"], r["train_loss"], r.get("val_loss")) for r in plain]


@pytest.mark.parametrize("stop_after", [3, 4])  # just before / just after an evaluated step
def test_an_interrupted_and_resumed_run_writes_the_rows_of_an_uninterrupted_one(
    tiny_config, tmp_path, stop_after
):
    # The same run (same name, so the same run_id in its rows) in two directories.
    whole = train(tiny_config(_downstream(4), f"trainer.out_dir={tmp_path / 'whole'}"))
    cfg = tiny_config(_downstream(4))
    first = train(cfg, stop_after=stop_after)
    assert first.interrupted and first.steps == stop_after
    assert {row["step"] for row in read_downstream(first.run_dir)} == (
        {4} if stop_after >= 4 else set()
    )
    train(cfg, resume=True)
    assert read_downstream(first.run_dir) == read_downstream(whole.run_dir)
    assert {row["step"] for row in read_downstream(whole.run_dir)} == {4, 8}


def test_repeated_task_labels_fail_when_the_config_is_read(tiny_config):
    tasks = f"[{QA_SCORE}, {{name: qa_score, n_shots: 1}}]"
    with pytest.raises(ConfigError) as caught:
        tiny_config(_downstream(2, tasks))
    message = str(caught.value)
    assert "\n" not in message
    assert "downstream tasks ['qa_score', 'qa_score'] repeat a name; give each a label" in message
    # Labels make them distinct.
    tasks = f"[{QA_SCORE}, {{name: qa_score, n_shots: 1, label: one_shot}}]"
    names = [t.task_name for t in tiny_config(_downstream(2, tasks)).trainer.callbacks[0].tasks]
    assert names == ["qa_score", "one_shot"]


def test_a_task_that_cannot_read_the_objectives_model_fails_when_the_config_is_read(
    tiny_config,
):
    with pytest.raises(ConfigError) as caught:
        tiny_config("objective.name=mlm", _downstream(2, "[{name: qa_finetune}]"))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("downstream callback: task 'qa_finetune' cannot read this run: ")
    assert "its objective 'mlm' trains bidirectional attention" in message
    assert "an objective with causal or prefix attention" in message
    # The same task under a causal objective is accepted.
    assert tiny_config(_downstream(2, "[{name: qa_finetune}]")).trainer.callbacks


def test_the_callback_refuses_an_engine_without_a_run_directory():
    callback = DownstreamConfig(tasks=[QaScoreConfig()]).build()
    with pytest.raises(ValueError, match="needs a run directory to write its rows"):
        callback.on_train_start(SimpleNamespace(run_dir=None))
