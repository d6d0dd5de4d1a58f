"""Statistics computed by transferlab itself: intervals, paired comparisons, rank correlations,
the Hessian trace (flatness), exact intervals for proportions (how often a verdict repeats),
decision accuracy over a ladder of sizes and signal-to-noise (``decisions``).

Every statistic works on a [seed, example] matrix (``matrix.py`` builds it from long per-example
rows) and every result carries the n it was computed from.
"""

from transferlab.analysis.binomial import Proportion, clopper_pearson
from transferlab.analysis.comparisons import Comparison, Verdict, compare_paired, verdict
from transferlab.analysis.correlation import RankCorrelation, spearman
from transferlab.analysis.decisions import (
    DecisionAccuracy,
    DecisionBootstrap,
    DecisionDifference,
    SignalNoise,
    pair_agreement,
    signal_to_noise,
)
from transferlab.analysis.flatness import TraceEstimate, hutchinson_trace, rademacher_probe
from transferlab.analysis.intervals import METHODS, Estimate, Method, estimate_mean
from transferlab.analysis.matrix import PairedMatrices, Rows, SeedExampleMatrix, align, pivot
from transferlab.analysis.multiple import holm
from transferlab.analysis.permutation import SignFlipTest, sign_flip_test

__all__ = [
    "METHODS",
    "Comparison",
    "DecisionAccuracy",
    "DecisionBootstrap",
    "DecisionDifference",
    "Estimate",
    "Method",
    "PairedMatrices",
    "Proportion",
    "RankCorrelation",
    "Rows",
    "SeedExampleMatrix",
    "SignalNoise",
    "SignFlipTest",
    "TraceEstimate",
    "Verdict",
    "align",
    "clopper_pearson",
    "compare_paired",
    "estimate_mean",
    "holm",
    "pair_agreement",
    "hutchinson_trace",
    "pivot",
    "rademacher_probe",
    "sign_flip_test",
    "signal_to_noise",
    "spearman",
    "verdict",
]
