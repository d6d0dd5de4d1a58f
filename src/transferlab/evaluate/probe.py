"""Multinomial logistic regression in torch: the linear probe on frozen features.

Features are standardized with the training set's mean and standard deviation. The weights
minimize the mean cross-entropy plus ``l2 / 2 * ||W||^2`` (the bias is not penalized), found with
full-batch L-BFGS from zero in float64: the problem is convex and the fit is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LinearProbe:
    classes: list[str]  # the labels seen in training, sorted; index k is column k
    mean: torch.Tensor  # [d]
    std: torch.Tensor  # [d]
    weight: torch.Tensor  # [d, K]
    bias: torch.Tensor  # [K]

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities [N, K] (float64) of ``features`` [N, d]."""
        return self._logits(features).softmax(-1)

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        x = (features.double() - self.mean) / self.std
        return x @ self.weight + self.bias


def fit_linear_probe(
    features: torch.Tensor, labels: Sequence[str], l2: float = 1e-3, max_iter: int = 200
) -> LinearProbe:
    """Fit a probe predicting ``labels`` from ``features`` [N, d]."""
    if features.ndim != 2 or features.shape[0] != len(labels) or not labels:
        raise ValueError(
            f"fit_linear_probe needs features [N, d] with one label per row; got features "
            f"{tuple(features.shape)} and {len(labels)} labels"
        )
    classes = sorted(set(labels))
    index = {label: k for k, label in enumerate(classes)}
    target = torch.tensor([index[label] for label in labels])
    x = features.double()
    mean = x.mean(0)
    std = x.std(0, correction=0).clamp_min(1e-8)  # a constant feature stays at 0, not NaN
    x = (x - mean) / std
    weight = torch.zeros(x.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, target) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearProbe(classes, mean, std, weight.detach(), bias.detach())
