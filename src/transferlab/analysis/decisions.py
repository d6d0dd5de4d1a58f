"""Decision accuracy (DataDecide, Magnusson et al. 2025) and signal-to-noise (Heineman et al.
2025, "Signal and Noise") of a task metric over a ladder of sizes.

Inputs are per-run scores: for one metric at one size, a [variant, seed] matrix of each run's
mean over the task's examples, *oriented* so that higher is better (``oriented`` negates a
lower-is-better metric such as bits per byte), so one rule orders every metric.

**Decision accuracy** of a smaller size against the target (the largest size): over the
C(k, 2) pairs of k variants, the fraction whose order by the mean over seeds at the smaller
size (by the proxy metric) agrees with their order at the target (by the target metric).
Ties: a pair tied on either side counts 1/2, the agreement a coin flip has, so chance is 1/2
whatever the ties (``CHANCE``).

**Interval**: a percentile bootstrap over seeds. One replicate draws, independently for each
size, that size's seeds with replacement (the same draw for every variant, whose runs of one
seed pair, and for every metric, which read the same runs) and recomputes the agreement from the
resampled means; the target's seeds are drawn once per replicate and shared by every smaller
size and metric. So a difference between two metrics (``difference``) is paired: both see the
same replicates. Examples are not resampled: the question is which seeds' training noise moves
the decision. With few seeds the bootstrap has few distinct replicates (27 with 3 seeds), so
the interval is coarse, and a percentile interval of a statistic this discrete can miss its own
point estimate: the interval is then widened to reach it.

**Signal-to-noise** at one size (``signal_to_noise``): signal is the relative dispersion of the
variant means, max_{i,j} |m_i - m_j| / |mean of the m|; noise is the relative spread over
seeds, the pooled within-variant standard deviation over seeds (square root of the mean of the
variants' sample variances) / |mean of the m|; SNR = signal / noise = the range of the means
over the pooled seed standard deviation (the normalization cancels, so it stays defined where
the mean is 0). Heineman et al. take noise over a run's final checkpoints; here it is over
seeds, which includes data-order and initialization noise as well. Where the runs recorded
transfer curves, ``checkpoint_noise`` is their definition too: the pooled standard deviation
of each run's score over its last ``FINAL_CHECKPOINTS`` evaluated steps, / |mean of the m|, and
``checkpoint_snr`` = the range of the means over that standard deviation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

CHANCE = 0.5  # the decision accuracy of a random order (and of a tie, by the rule above)
DEFAULT_RESAMPLES = 1000
FINAL_CHECKPOINTS = 3  # the last evaluated steps of a run whose spread is checkpoint noise


def oriented(scores: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """``scores`` with higher meaning better: negated for a lower-is-better metric."""
    scores = np.asarray(scores, dtype=float)
    return scores if higher_is_better else -scores


def pair_agreement(proxy: np.ndarray, target: np.ndarray) -> float:
    """The fraction of variant pairs ordered alike by ``proxy`` and ``target`` (oriented means,
    one per variant); a pair tied on either side counts 1/2."""
    proxy, target = np.asarray(proxy, dtype=float), np.asarray(target, dtype=float)
    if proxy.shape != target.shape or proxy.ndim != 1 or proxy.size < 2:
        raise ValueError(
            f"pair_agreement needs two vectors of one mean per variant, at least 2 variants; "
            f"got shapes {proxy.shape} and {target.shape}"
        )
    i, j = np.triu_indices(proxy.size, k=1)
    signs = np.sign(proxy[i] - proxy[j]) * np.sign(target[i] - target[j])
    return float(np.mean((signs + 1) / 2))


@dataclass(frozen=True)
class DecisionAccuracy:
    """Decision accuracy of one size (by one metric) against the target, with its interval."""

    accuracy: float
    low: float
    high: float
    level: float
    n_variants: int
    n_pairs: int  # C(n_variants, 2)
    n_seeds: int  # seeds of the smaller size (the target's: ``n_target_seeds``)
    n_target_seeds: int
    resamples: int


@dataclass(frozen=True)
class DecisionDifference:
    """Decision accuracy by one metric minus by another, on the same bootstrap replicates."""

    diff: float
    low: float
    high: float
    level: float
    resamples: int


class DecisionBootstrap:
    """The bootstrap replicates of decision accuracy for every (size, metric) of a ladder.

    ``sizes``: per smaller size, metric -> oriented [variant, seed] scores (every metric of a
    size has the same seeds); ``target``: the oriented [variant, seed] scores of the target
    metric at the largest size. Replicates are drawn once, at construction, from ``seed``."""

    def __init__(
        self,
        sizes: list[dict[str, np.ndarray]],
        target: np.ndarray,
        resamples: int = DEFAULT_RESAMPLES,
        seed: int = 0,
    ) -> None:
        if resamples < 1:
            raise ValueError(f"resamples must be a positive number, got {resamples}")
        self.target = _matrix(target, "target")
        self.sizes = [{m: _matrix(s, m) for m, s in size.items()} for size in sizes]
        for size in self.sizes:
            shapes = {scores.shape for scores in size.values()}
            if len(shapes) != 1 or next(iter(shapes))[0] != self.target.shape[0]:
                raise ValueError(
                    f"every metric of a size needs one [variant, seed] matrix of the target's "
                    f"{self.target.shape[0]} variants and one set of seeds; got shapes {shapes}"
                )
        self.resamples = resamples
        rng = np.random.default_rng(seed)
        target_draws = _draw_means(self.target, resamples, rng)  # [resamples, variants]
        # draws[s][metric]: [resamples] agreements; the seed draw is shared by a size's metrics
        self.draws: list[dict[str, np.ndarray]] = []
        for size in self.sizes:
            n_seeds = next(iter(size.values())).shape[1]
            picks = rng.integers(0, n_seeds, size=(resamples, n_seeds))
            self.draws.append(
                {
                    metric: _agreements(scores[:, picks].mean(axis=2).T, target_draws)
                    for metric, scores in size.items()
                }
            )

    def accuracy(self, size: int, metric: str, level: float = 0.95) -> DecisionAccuracy:
        """Decision accuracy of smaller size number ``size`` (0: the smallest) by ``metric``."""
        scores = self.sizes[size][metric]
        point = pair_agreement(scores.mean(axis=1), self.target.mean(axis=1))
        low, high = _percentiles(self.draws[size][metric], level, point)
        n_variants = scores.shape[0]
        return DecisionAccuracy(
            accuracy=point,
            low=low,
            high=high,
            level=level,
            n_variants=n_variants,
            n_pairs=math.comb(n_variants, 2),
            n_seeds=scores.shape[1],
            n_target_seeds=self.target.shape[1],
            resamples=self.resamples,
        )

    def difference(
        self, metric: str, than: str, sizes: list[int], level: float = 0.95
    ) -> DecisionDifference:
        """The mean over ``sizes`` (smaller-size numbers) of decision accuracy by ``metric``
        minus by ``than``, with its paired percentile interval."""
        if not sizes:
            raise ValueError("difference needs at least one smaller size")
        point = np.mean(
            [self.accuracy(s, metric).accuracy - self.accuracy(s, than).accuracy for s in sizes]
        )
        draws = np.mean([self.draws[s][metric] - self.draws[s][than] for s in sizes], axis=0)
        low, high = _percentiles(draws, level, float(point))
        return DecisionDifference(float(point), low, high, level, self.resamples)


@dataclass(frozen=True)
class SignalNoise:
    """Heineman et al.'s signal, noise and their ratio at one size (see the module docstring)."""

    signal: float  # max pairwise distance of the variant means / |their mean|
    noise: float  # pooled standard deviation over seeds / |the mean of the variant means|
    snr: float  # signal / noise: range of the means / pooled seed standard deviation
    n_variants: int
    n_seeds: int
    # over the runs' final checkpoints (NaN without transfer curves)
    checkpoint_noise: float = math.nan
    checkpoint_snr: float = math.nan


def signal_to_noise(scores: np.ndarray, checkpoints: np.ndarray | None = None) -> SignalNoise:
    """Signal, noise and SNR of a [variant, seed] matrix of run scores (at least 2 seeds, so
    the spread over seeds is defined); ``checkpoints``, a [run, checkpoint] matrix of each run's
    scores at its final checkpoints (at least 2), adds the checkpoint noise and its SNR."""
    scores = _matrix(scores, "scores")
    if scores.shape[1] < 2:
        raise ValueError(
            f"signal_to_noise needs at least 2 seeds per variant to measure noise; got "
            f"{scores.shape[1]}"
        )
    means = scores.mean(axis=1)
    spread = float(means.max() - means.min())  # the largest distance between two means
    pooled_sd = float(np.sqrt(np.mean(scores.var(axis=1, ddof=1))))
    scale = abs(float(means.mean()))
    relative = (lambda x: x / scale) if scale > 0 else (lambda _: math.nan)
    by_checkpoint = {}
    if checkpoints is not None:
        checkpoints = np.asarray(checkpoints, dtype=float)
        if checkpoints.ndim != 2 or checkpoints.shape[1] < 2:
            raise ValueError(
                f"checkpoints: needs a [run, checkpoint] matrix of at least 2 checkpoints; got "
                f"shape {checkpoints.shape}"
            )
        checkpoint_sd = float(np.sqrt(np.mean(checkpoints.var(axis=1, ddof=1))))
        by_checkpoint = {
            "checkpoint_noise": relative(checkpoint_sd),
            "checkpoint_snr": _ratio(spread, checkpoint_sd),
        }
    return SignalNoise(
        signal=relative(spread),
        noise=relative(pooled_sd),
        snr=_ratio(spread, pooled_sd),
        n_variants=scores.shape[0],
        n_seeds=scores.shape[1],
        **by_checkpoint,
    )


def _ratio(spread: float, sd: float) -> float:
    if sd > 0:
        return spread / sd
    return math.inf if spread > 0 else math.nan


def _matrix(scores: np.ndarray, label: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] < 2 or scores.shape[1] < 1:
        raise ValueError(
            f"{label}: needs a [variant, seed] matrix of at least 2 variants and 1 seed; got "
            f"shape {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError(f"{label}: holds a NaN or infinite score; every run needs a score")
    return scores


def _draw_means(scores: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[resamples, variants]: the variant means over seeds drawn with replacement (one draw of
    seeds per replicate, shared by the variants)."""
    picks = rng.integers(0, scores.shape[1], size=(resamples, scores.shape[1]))
    return scores[:, picks].mean(axis=2).T


def _agreements(proxy: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Row-wise ``pair_agreement`` of two [resamples, variants] arrays."""
    pairs = np.array(list(itertools.combinations(range(proxy.shape[1]), 2)))
    i, j = pairs[:, 0], pairs[:, 1]
    signs = np.sign(proxy[:, i] - proxy[:, j]) * np.sign(target[:, i] - target[:, j])
    return ((signs + 1) / 2).mean(axis=1)


def _percentiles(draws: np.ndarray, level: float, point: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of ``draws``, widened to reach ``point``."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return min(float(low), point), max(float(high), point)
