"""Objectives, one module each, registered in ``OBJECTIVES`` by name."""

from transferlab.objectives import answer_lm, clm, conditional, mlm, permutation, reverse
from transferlab.objectives.answer_lm import AnswerLM, AnswerLmConfig, answer_loss_batch
from transferlab.objectives.base import (
    IGNORE_INDEX,
    Attention,
    Batch,
    LossOutput,
    Objective,
    TokenPredictionConfig,
    TokenPredictionObjective,
    token_prediction_loss,
)
from transferlab.objectives.clm import CausalLM, ClmConfig
from transferlab.objectives.conditional import ConditionalConfig, ConditionalLM
from transferlab.objectives.mlm import MaskedLM, MlmConfig
from transferlab.objectives.permutation import PermutationConfig, PermutationLM
from transferlab.objectives.reverse import ReverseConfig, ReverseLM

__all__ = [
    "IGNORE_INDEX",
    "AnswerLM",
    "AnswerLmConfig",
    "Attention",
    "Batch",
    "CausalLM",
    "ClmConfig",
    "ConditionalConfig",
    "ConditionalLM",
    "LossOutput",
    "MaskedLM",
    "MlmConfig",
    "Objective",
    "PermutationConfig",
    "PermutationLM",
    "ReverseConfig",
    "ReverseLM",
    "TokenPredictionConfig",
    "TokenPredictionObjective",
    "answer_lm",
    "answer_loss_batch",
    "clm",
    "conditional",
    "mlm",
    "permutation",
    "reverse",
    "token_prediction_loss",
]
