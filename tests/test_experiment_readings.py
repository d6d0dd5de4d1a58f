"""An experiment reads each run as its objective trained it, and refuses a task that cannot
read a variant's model before anything is trained."""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq
import pytest
import torch

from tiny_experiment import tiny_base
from transferlab.config import ConfigError
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate import QaScoreConfig, build_requests
from transferlab.evaluate.pll import pseudo_log_likelihood
from transferlab.evaluate.score import score_choices
from transferlab.experiment import ExperimentSpec, plan_experiment, run_experiment
from transferlab.experiment import executor as executor_module
from transferlab.train import load_run

QA_SCORE = {"name": "qa_score", "n_choices": 4}


def _spec(tasks: list[dict[str, Any]]) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "readings",
            "base": tiny_base(2),
            "axes": {
                "objective": {"clm": {"objective.name": "clm"}, "mlm": {"objective.name": "mlm"}}
            },
            "seeds": [0],
            "tasks": tasks,
        }
    )


@pytest.fixture
def store(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    return tmp_path / "store"


def test_qa_score_reads_an_mlm_run_by_pll_and_a_clm_run_by_likelihood(store) -> None:
    plan = plan_experiment(_spec([QA_SCORE]))
    executor_module.execute(plan)
    for planned in plan.evals:
        loaded = load_run(planned.run.run_dir)
        tokenizer = TextTokenizer.from_file(loaded.tokenizer_path)
        world = loaded.config.world.build()
        examples = build_requests(QaScoreConfig(**QA_SCORE), world, tokenizer, planned.run.seed)
        requests = [example.request for example in examples]
        if planned.run.variant == "mlm":
            scores = pseudo_log_likelihood(loaded.model, requests, tokenizer.special.mask)
        else:
            scores = score_choices(loaded.model, requests, pad_id=tokenizer.special.pad)
        expected = [
            float(torch.tensor(s, dtype=torch.float64).softmax(0)[example.gold])
            for s, example in zip(scores, examples, strict=True)
        ]
        rows = pq.read_table(planned.rows_path).to_pylist()
        assert [row["example_id"] for row in rows] == [ex.item.id for ex in examples]
        assert [row["p_correct"] for row in rows] == pytest.approx(expected, abs=1e-6)


def test_a_task_that_cannot_read_a_variant_fails_at_plan_time(store, monkeypatch) -> None:
    trained = []
    monkeypatch.setattr(executor_module, "train", lambda *a, **k: trained.append(a))
    spec = _spec([QA_SCORE, {"name": "qa_finetune", "steps": 2}])
    expected = (
        "task 'qa_finetune' cannot read run variant 'mlm': its objective 'mlm' trains "
        "bidirectional attention and qa_finetune generates causally; use modular_answer or "
        "qa_classify or qa_probe or "
        "qa_reverse_score or qa_score, or an objective with causal or prefix attention"
    )
    with pytest.raises(ConfigError) as planned:
        plan_experiment(spec)
    assert str(planned.value) == expected
    with pytest.raises(ConfigError, match="^task 'qa_finetune' cannot read run variant 'mlm'"):
        run_experiment(spec, store.parent / "exp")
    assert trained == []
    assert not (store / "runs").exists()
