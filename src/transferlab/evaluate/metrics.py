"""Per-example metrics: exact match for generation, and the multiple-choice scores.

Multiple choice, for choices ``j`` with summed log-likelihood ``s_j`` of the choice given the
context, ``t_j`` tokens and ``c_j`` characters, and the gold choice ``g``:

- ``correct``: ``argmax_j s_j == g`` (lm-evaluation-harness ``acc``).
- ``acc_norm``: ``argmax_j s_j / c_j == g`` (lm-evaluation-harness ``acc_norm``: log-likelihood
  per character of the choice as scored, its leading space included).
- ``p_correct``: ``softmax(s)_g``, the probability of the gold among the choices.
- ``margin``: ``p_correct - max_{j != g} softmax(s)_j``; positive exactly when ``correct``.
- ``norm_p_correct``: ``softmax(s / t)_g = exp(s_g / t_g) / sum_j exp(s_j / t_j)``: the same
  renormalization applied to each choice's geometric-mean token probability, so a long choice is
  not penalized for its length.

Ties in an argmax go to the first choice (choice order is shuffled per example).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from transferlab.config.metrics import MetricSpec

# The declarations of the scores above, shared by the tasks that compute them (a probe's
# choices are its classes).
ACCURACY = MetricSpec("correct", True, (0.0, 1.0), "1 when the prediction is the gold, else 0")
ACC_NORM = MetricSpec(
    "acc_norm", True, (0.0, 1.0), "1 when the top choice per character is the gold"
)
P_CORRECT = MetricSpec("p_correct", True, (0.0, 1.0), "probability the model gives the gold")
MARGIN = MetricSpec(
    "margin", True, (-1.0, 1.0), "p_correct minus the largest probability of another choice"
)
NORM_P_CORRECT = MetricSpec(
    "norm_p_correct", True, (0.0, 1.0), "p_correct from per-token (length-normalized) scores"
)
CHOICE_METRICS = (ACCURACY, ACC_NORM, P_CORRECT, MARGIN, NORM_P_CORRECT)


@dataclass(frozen=True)
class ChoiceScores:
    prediction: int  # index of the chosen choice (argmax of the summed log-likelihood)
    correct: float
    acc_norm: float
    p_correct: float
    margin: float
    norm_p_correct: float

    def metrics(self) -> dict[str, float]:
        """The scores by name, in the order of ``CHOICE_METRICS``."""
        return {metric.name: getattr(self, metric.name) for metric in CHOICE_METRICS}


def choice_scores(
    logprobs: Sequence[float], gold: int, n_chars: Sequence[int], n_tokens: Sequence[int]
) -> ChoiceScores:
    """The metrics above for one example; needs at least two choices.

    ``n_chars`` is what ``acc_norm`` divides by: characters, unless the task normalizes by
    another unit (``multiple_choice``'s ``normalization``: bytes or tokens)."""
    if len(logprobs) < 2 or not len(logprobs) == len(n_chars) == len(n_tokens):
        raise ValueError(
            "choice_scores needs at least two choices and one length per choice; got "
            f"{len(logprobs)} log-likelihoods, {len(n_chars)} and {len(n_tokens)} lengths"
        )
    s = torch.tensor(logprobs, dtype=torch.float64)
    probs = s.softmax(0)
    prediction = int(s.argmax())
    per_char = s / torch.tensor(n_chars, dtype=torch.float64)
    per_token = s / torch.tensor(n_tokens, dtype=torch.float64)
    p_gold = float(probs[gold])
    return ChoiceScores(
        prediction=prediction,
        correct=float(prediction == gold),
        acc_norm=float(int(per_char.argmax()) == gold),
        p_correct=p_gold,
        margin=p_gold - max_other(probs, gold),
        norm_p_correct=float(per_token.softmax(0)[gold]),
    )


def max_other(values: torch.Tensor, index: int) -> float:
    """Largest entry of the 1-D ``values`` other than ``values[index]``."""
    return float(torch.cat((values[:index], values[index + 1 :])).max())


def exact_match(prediction: str, target: str) -> float:
    """1.0 when the generated text, stripped of surrounding whitespace, is the target."""
    return float(prediction.strip() == target.strip())
