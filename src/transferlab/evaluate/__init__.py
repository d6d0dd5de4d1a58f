"""Downstream tasks: fine-tuning, multiple-choice scoring and linear probing, one row per example.

Importing this package registers every task in ``transferlab.config.TASKS``.
"""

from transferlab.evaluate import (  # noqa: F401 (registers the real-text tasks and the callback)
    code_likelihood,
    code_module,
    code_name,
    downstream,
    lm_eval_task,
    modular_answer,
    multiple_choice,
    qa_reverse,
    sample_score,
    text_finetune,
    text_likelihood,
    text_probe,
)
from transferlab.evaluate.base import QaTaskConfig, Task, TaskNote
from transferlab.evaluate.features import last_token_hidden
from transferlab.evaluate.finetune import (
    FinetuneResult,
    FinetuneSettings,
    finetune,
)
from transferlab.evaluate.generate import generate, greedy_generate
from transferlab.evaluate.lora import LORA_TARGETS, add_lora
from transferlab.evaluate.metrics import ChoiceScores, choice_scores, exact_match
from transferlab.evaluate.probe import LinearProbe, fit_linear_probe
from transferlab.evaluate.qa_classify import QaClassifyConfig, QaClassifyTask
from transferlab.evaluate.qa_finetune import QaFinetuneConfig, QaFinetuneTask
from transferlab.evaluate.qa_probe import QaProbeConfig, QaProbeTask
from transferlab.evaluate.qa_score import ChoiceExample, QaScoreConfig, QaScoreTask, build_requests
from transferlab.evaluate.results import IDENTITY_COLUMNS, ExampleResult, check_rows, row_columns
from transferlab.evaluate.sample_score import SampleScoreConfig, SampleScoreTask
from transferlab.evaluate.score import score_choices

__all__ = [
    "IDENTITY_COLUMNS",
    "LORA_TARGETS",
    "ChoiceExample",
    "ChoiceScores",
    "ExampleResult",
    "FinetuneResult",
    "FinetuneSettings",
    "LinearProbe",
    "QaFinetuneConfig",
    "QaClassifyConfig",
    "QaClassifyTask",
    "QaFinetuneTask",
    "QaProbeConfig",
    "QaProbeTask",
    "QaScoreConfig",
    "QaScoreTask",
    "QaTaskConfig",
    "SampleScoreConfig",
    "SampleScoreTask",
    "Task",
    "TaskNote",
    "add_lora",
    "build_requests",
    "check_rows",
    "choice_scores",
    "exact_match",
    "finetune",
    "fit_linear_probe",
    "generate",
    "greedy_generate",
    "row_columns",
    "last_token_hidden",
    "score_choices",
]
