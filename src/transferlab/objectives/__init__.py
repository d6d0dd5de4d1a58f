"""Objectives, one module each, registered in ``OBJECTIVES`` by name."""

from transferlab.objectives import (
    answer_lm,
    clm,
    conditional,
    electra,
    equation_lm,
    mlm,
    permutation,
    prefix_lm,
    reverse,
    span_corruption,
    ul2,
)
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
from transferlab.objectives.electra import Electra, ElectraConfig
from transferlab.objectives.equation_lm import EquationLM, EquationLmConfig
from transferlab.objectives.mlm import MaskedLM, MlmConfig
from transferlab.objectives.permutation import PermutationConfig, PermutationLM
from transferlab.objectives.prefix_lm import PrefixLM, PrefixLmConfig
from transferlab.objectives.reverse import ReverseConfig, ReverseLM
from transferlab.objectives.span_corruption import SpanCorruption, SpanCorruptionConfig
from transferlab.objectives.ul2 import UL2, DenoiserConfig, Ul2Config

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
    "DenoiserConfig",
    "Electra",
    "ElectraConfig",
    "EquationLM",
    "EquationLmConfig",
    "LossOutput",
    "MaskedLM",
    "MlmConfig",
    "Objective",
    "PermutationConfig",
    "PermutationLM",
    "ReverseConfig",
    "ReverseLM",
    "PrefixLM",
    "PrefixLmConfig",
    "SpanCorruption",
    "SpanCorruptionConfig",
    "TokenPredictionConfig",
    "TokenPredictionObjective",
    "UL2",
    "Ul2Config",
    "answer_lm",
    "answer_loss_batch",
    "clm",
    "conditional",
    "electra",
    "equation_lm",
    "mlm",
    "permutation",
    "reverse",
    "prefix_lm",
    "span_corruption",
    "token_prediction_loss",
    "ul2",
]
