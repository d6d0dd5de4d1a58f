"""Experiments: spec, planner, content-addressed stages, executors, results and analysis."""

from transferlab.experiment.loading import load_experiment, preset_names
from transferlab.experiment.planner import Plan, PlannedEval, PlannedRun, plan_experiment
from transferlab.experiment.results import ResultTables, collect_results, load_results
from transferlab.experiment.runner import ExperimentResult, run_experiment, write_plan
from transferlab.experiment.spec import CompareSpec, ExpectSpec, ExperimentSpec

__all__ = [
    "CompareSpec",
    "ExpectSpec",
    "ExperimentResult",
    "ExperimentSpec",
    "Plan",
    "PlannedEval",
    "PlannedRun",
    "ResultTables",
    "collect_results",
    "load_experiment",
    "load_results",
    "plan_experiment",
    "preset_names",
    "run_experiment",
    "write_plan",
]
