"""``lm_eval``: lm-evaluation-harness tasks, run by lm-eval itself on each run of an experiment,
their per-sample outputs kept as our rows so that our paired statistics apply to them.

``tasks`` lists lm-eval task names (found in ``include`` folders of task YAMLs, or lm-eval's
own) and paths to task YAML files. lm-eval builds every prompt, few-shot context and choice and
computes its per-sample metrics; the model answers through ``lm_eval_model.TransferlabLM``
(our tokenizer, scoring and greedy generation, as the objective trained the model). lm-eval runs
offline (``offline``): a task whose dataset is on the hub, not in local files, fails in one line.

Rows: one per lm-eval sample, ``example_id`` ``<lm-eval task>/<doc_id>`` (the document's index
in the task's evaluation split: the same for every model and tokenizer), ``group`` the lm-eval
task (a group such as a suite's subtasks is one config, its subtasks the row groups). The
metrics come from lm-eval's task configs, not this class (``describe``): each metric lm-eval
computes per sample, named ``<metric>`` for the default filter and ``<metric>_<filter>``
otherwise, with lm-eval's ``higher_is_better``; the per-document (ll, weight) pairs of the
perplexity metrics become per-document perplexities / bits per byte; corpus-level metrics (f1,
mcc, bleu ...) have no per-example value and are left out. Multiple-choice tasks add
``p_correct``, the softmax over the choices' summed log-likelihoods at the gold.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from transferlab.config.metrics import ConfigMetrics, MetricSpec
from transferlab.config.registry import TASKS
from transferlab.config.schemas import TaskConfig
from transferlab.evaluate.base import Subject, Task
from transferlab.evaluate.code_tasks import token_budget
from transferlab.evaluate.lm_eval_files import YAML_SUFFIXES, lm_eval_files
from transferlab.evaluate.results import ExampleResult

log = logging.getLogger(__name__)

# What lm-eval's per-sample values become, by the metric's aggregation: a per-sample score
# (kept as it is), or a log-likelihood (with its word / byte count) read as a per-document value.
PER_SAMPLE = ("mean", "nanmean", "median")
FROM_LOGLIKELIHOOD = ("perplexity", "weighted_perplexity", "bits_per_byte")
UNIT_METRICS = ("acc", "acc_norm", "acc_mutual_info", "acc_bytes", "exact_match")
P_CORRECT = MetricSpec(
    "p_correct", True, (0.0, 1.0), "softmax over the choices' log-likelihoods at the gold"
)


def declared_metrics(cfg: LmEvalConfig) -> tuple[MetricSpec, ...]:
    return describe(cfg).metrics


@TASKS.register("lm_eval")
class LmEvalConfig(TaskConfig):
    name: Literal["lm_eval"] = "lm_eval"
    uses_world: ClassVar[bool] = False
    readings: ClassVar[tuple[str, ...]] = ("causal", "prefix")
    reading_limit: ClassVar[str] = (
        "answers lm-eval's log-likelihood and generation requests, which a bidirectional model "
        "does not give"
    )
    tasks: list[str] = Field(min_length=1)  # lm-eval task names and paths to task YAML files
    include: list[str] = Field(default_factory=list)  # folders of task YAMLs named in tasks
    num_fewshot: int | None = Field(default=None, ge=0)  # None: each task's own default
    limit: int | None = Field(default=None, gt=0)  # the first `limit` documents of each task
    metric_names: list[str] | None = None  # keep only these metrics (None: every one)
    batch_size: int = Field(default=32, gt=0)  # sequences per forward pass
    max_tokens: int = Field(default=2048, gt=1)  # input window, lowered to the model's
    max_gen_toks: int = Field(default=256, gt=0)  # at most this many tokens per generation
    metrics: ClassVar[Any] = ConfigMetrics(declared_metrics)

    @field_validator("tasks")
    @classmethod
    def _tasks_exist(cls, value: list[str]) -> list[str]:
        if importlib.util.find_spec("lm_eval") is None:
            raise ValueError(
                "task lm_eval needs lm-evaluation-harness; install it with "
                "pip install 'transferlab[lmeval]'"
            )
        missing = [t for t in value if t.endswith(YAML_SUFFIXES) and not Path(t).is_file()]
        if missing:
            raise ValueError(f"task YAML files {missing} do not exist; fix the paths")
        return value

    @field_validator("include")
    @classmethod
    def _folders_exist(cls, value: list[str]) -> list[str]:
        missing = [folder for folder in value if not Path(folder).is_dir()]
        if missing:
            raise ValueError(f"include folders {missing} do not exist; fix the paths")
        return value

    @property
    def task_name(self) -> str:
        """``label``, else ``lm_eval:`` + the tasks (a YAML file by its name, without suffix)."""
        names = (Path(t).stem if t.endswith(YAML_SUFFIXES) else t for t in self.tasks)
        return self.label or "lm_eval:" + "+".join(names)

    def input_files(self) -> list[Path]:
        """The task YAMLs, the files of the include folders and what the YAMLs name locally
        (see ``lm_eval_files``)."""
        return lm_eval_files(self.tasks, self.include)

    def build(self) -> LmEvalTask:
        return LmEvalTask(self)


@dataclass(frozen=True)
class RowMetric:
    """How one row metric is read from an lm-eval sample."""

    spec: MetricSpec
    metric: str  # lm-eval's name
    filter: str  # lm-eval's filter whose samples hold it
    aggregation: str


@dataclass(frozen=True)
class Described:
    """What the tasks of a config report, from lm-eval's task configs."""

    output_type: str  # the same for every task of the config
    row_metrics: tuple[RowMetric, ...]

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        extra = (P_CORRECT,) if self.output_type == "multiple_choice" else ()
        return (*(m.spec for m in self.row_metrics), *extra)


def describe(cfg: LmEvalConfig) -> Described:
    """The metrics ``cfg``'s tasks report; loads the tasks (once per process) through lm-eval."""
    return _describe(tuple(cfg.tasks), tuple(cfg.include), _names(cfg.metric_names))


def _names(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@functools.cache
def _describe(
    tasks: tuple[str, ...], include: tuple[str, ...], keep: tuple[str, ...] | None
) -> Described:
    manager = task_manager(tasks, include)
    seen: dict[str, Described] = {}
    for entry in tasks:
        with offline(), lm_eval_errors(entry):
            loaded = manager.load([entry])["tasks"]
        for name, task in loaded.items():
            seen[name] = Described(task.OUTPUT_TYPE, tuple(_row_metrics(task, keep)))
    first, *rest = seen.items()
    for name, described in rest:
        if described != first[1]:
            raise ValueError(
                f"lm_eval: tasks {first[0]!r} and {name!r} report different metrics or output "
                "types; give each its own lm_eval entry (with a label)"
            )
    if not first[1].row_metrics:
        raise ValueError(
            f"lm_eval: task {first[0]!r} has no per-example metric to keep (lm-eval computes "
            f"{_lm_eval_metrics(next(iter(loaded.values())))}); set metric_names to some of those "
            "or pick a task with per-sample metrics"
        )
    return first[1]


def _lm_eval_metrics(task: Any) -> list[str]:
    return sorted(task.aggregation())


def _row_metrics(task: Any, keep: tuple[str, ...] | None) -> list[RowMetric]:
    """The row metrics of one loaded lm-eval task, in lm-eval's order, filter by filter."""
    aggregations = {metric: fn.__name__ for metric, fn in task.aggregation().items()}
    unknown = sorted(set(keep or ()) - set(aggregations))
    if unknown:
        raise ValueError(
            f"lm_eval: metric_names {unknown} are not metrics of task {task.task_name!r} "
            f"(it computes {sorted(aggregations)}); fix metric_names"
        )
    higher = task.higher_is_better()
    filters = [f["name"] for f in getattr(task.config, "filter_list", None) or []] or ["none"]
    out = []
    for filter_name in filters:
        for metric, aggregation in aggregations.items():
            if keep is not None and metric not in keep:
                continue
            if aggregation not in PER_SAMPLE + FROM_LOGLIKELIHOOD:
                log.info(
                    "lm_eval: %s is corpus-level (%s), not kept per example", metric, aggregation
                )
                continue
            spec = _spec(metric, filter_name, aggregation, bool(higher.get(metric, True)))
            out.append(RowMetric(spec, metric, filter_name, aggregation))
    return out


def _spec(metric: str, filter_name: str, aggregation: str, higher: bool) -> MetricSpec:
    name = metric if filter_name == "none" else f"{metric}_{filter_name}"
    name = re.sub(r"\W", "_", name)
    if aggregation == "bits_per_byte":
        return MetricSpec(name, False, (0.0, None), "bits per UTF-8 byte of the document")
    if aggregation in FROM_LOGLIKELIHOOD:
        return MetricSpec(name, False, (1.0, None), f"lm-eval {metric} of the document alone")
    bounds = (0.0, 1.0) if metric in UNIT_METRICS else (None, None)
    return MetricSpec(name, higher, bounds, f"lm-eval per-sample {metric} ({filter_name} filter)")


def task_manager(tasks: tuple[str, ...], include: tuple[str, ...]) -> Any:
    """lm-eval's ``TaskManager`` over ``include``, and over lm-eval's own task YAMLs only when
    some task is named that ``include`` does not define (indexing them takes seconds)."""
    from lm_eval.tasks import TaskManager

    paths = list(include) or None
    manager = TaskManager(include_path=paths, include_defaults=False)
    names = [t for t in tasks if not t.endswith(YAML_SUFFIXES)]
    if all(name in manager.all_tasks for name in names):
        return manager
    return TaskManager(include_path=paths, include_defaults=True)


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Hugging Face datasets and hub offline while lm-eval runs: a task needing the hub fails at
    once instead of downloading (or hanging without network). ``datasets`` and the hub read
    their offline flags at import, so the flags are set on the modules as well as the env."""
    import datasets.config
    import huggingface_hub.constants

    flags = [
        (datasets.config, "HF_HUB_OFFLINE"),
        (datasets.config, "HF_DATASETS_OFFLINE"),
        (huggingface_hub.constants, "HF_HUB_OFFLINE"),
    ]
    saved_flags = [getattr(module, attr) for module, attr in flags]
    saved_env = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    try:
        for module, attr in flags:
            setattr(module, attr, True)
        os.environ.update(dict.fromkeys(saved_env, "1"))
        yield
    finally:
        for (module, attr), value in zip(flags, saved_flags, strict=True):
            setattr(module, attr, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def lm_eval_errors(what: str) -> Iterator[None]:
    """lm-eval's errors for a task it cannot find or whose data is not local, in one line."""
    try:
        yield
    except KeyError as error:
        raise ValueError(
            f"lm_eval: {what!r} is neither an lm-eval task name nor a task YAML file; give the "
            "path to a task YAML, or add the folder that defines it to include"
        ) from error
    except ConnectionError as error:
        raise ValueError(
            f"lm_eval: {what!r} needs data from the Hugging Face hub and lm-eval runs offline "
            "here; write a task YAML over local files (dataset_path: json, dataset_kwargs: "
            "{data_files: ...})"
        ) from error


class LmEvalTask(Task[LmEvalConfig]):
    def __init__(self, cfg: LmEvalConfig) -> None:
        super().__init__(cfg)
        # lm-eval's logged samples of the last run, by lm-eval task: what the rows were read
        # from, kept for inspection (its requests, responses and metrics).
        self.samples: dict[str, list[dict[str, Any]]] = {}

    def read(self, subject: Subject) -> list[dict[str, Any]]:
        import lm_eval

        from transferlab.evaluate.lm_eval_model import TransferlabLM

        cfg = self.cfg
        described = describe(cfg)
        window = token_budget(subject.model, cfg.max_tokens)
        model = TransferlabLM(subject, window, cfg.batch_size, cfg.max_gen_toks)
        with offline(), lm_eval_errors(", ".join(cfg.tasks)):
            out = lm_eval.simple_evaluate(
                model=model,
                tasks=list(cfg.tasks),
                task_manager=task_manager(tuple(cfg.tasks), tuple(cfg.include)),
                num_fewshot=cfg.num_fewshot,
                limit=cfg.limit,
                log_samples=True,
                bootstrap_iters=0,
                # The shots are drawn by the run's seed, the same for every variant; lm-eval
                # must not reseed this process's global generators (a training run may go on).
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
                fewshot_random_seed=subject.seed,
            )
        self.samples = out["samples"]
        rows = []
        for task, samples in out["samples"].items():
            split = _eval_split(out["configs"][task])
            for doc_id, by_filter in _by_document(samples).items():
                example = ExampleResult(
                    run_id=subject.run_id,
                    task=cfg.task_name,
                    example_id=f"{task}/{doc_id}",
                    group=task,
                    split=split,
                    **sample_outcome(by_filter, described),
                )
                rows.append(example.to_dict())
        return rows


def _eval_split(config: dict[str, Any]) -> str:
    return str(config.get("test_split") or config.get("validation_split") or "test")


def _by_document(samples: list[dict[str, Any]]) -> dict[int, dict[str, dict[str, Any]]]:
    """lm-eval's samples (one per document and filter) by document, then filter."""
    documents: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for sample in samples:
        documents[int(sample["doc_id"])][sample["filter"]] = sample
    return dict(sorted(documents.items()))


def sample_outcome(by_filter: dict[str, dict[str, Any]], described: Described) -> dict[str, Any]:
    """prediction, target and metrics of one document from its lm-eval samples by filter."""
    metrics = {
        m.spec.name: per_example(by_filter[m.filter][m.metric], m.aggregation)
        for m in described.row_metrics
    }
    sample = by_filter.get("none") or next(iter(by_filter.values()))
    if described.output_type == "multiple_choice":
        choices = [str(arguments[1]).strip() for arguments in sample["arguments"]]
        logprobs = [float(resp[0]) for resp in sample["filtered_resps"]]
        gold = gold_indices(sample["target"], choices)
        metrics[P_CORRECT.name] = p_correct(logprobs, gold)
        prediction = choices[max(range(len(logprobs)), key=logprobs.__getitem__)]
        return {"prediction": prediction, "target": choices[gold[0]], "metrics": metrics}
    response = sample["filtered_resps"]
    if described.output_type == "generate_until":
        text = response[0] if isinstance(response, list) else response
        return {"prediction": str(text), "target": str(sample["target"]), "metrics": metrics}
    target = "" if described.output_type == "loglikelihood_rolling" else str(sample["target"])
    return {"prediction": "", "target": target, "metrics": metrics}


def per_example(value: Any, aggregation: str) -> float:
    """One document's value of a metric lm-eval logged per sample (see ``FROM_LOGLIKELIHOOD``)."""
    if aggregation == "perplexity":  # a log-likelihood
        return math.exp(-float(value))
    if aggregation in FROM_LOGLIKELIHOOD:  # (log-likelihood, words or bytes)
        loglikelihood, weight = float(value[0]), max(float(value[1]), 1.0)
        if aggregation == "bits_per_byte":
            return -loglikelihood / weight / math.log(2)
        return math.exp(-loglikelihood / weight)
    return float(value)


def gold_indices(target: Any, choices: list[str]) -> list[int]:
    """The gold choices' indices from lm-eval's target: an index, a choice, or a list of them."""
    targets = target if isinstance(target, list) else [target]
    return [t if isinstance(t, int) else choices.index(str(t).strip()) for t in targets]


def p_correct(logprobs: list[float], gold: list[int]) -> float:
    """Softmax over the choices' log-likelihoods, summed over the gold choices."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return sum(weights[g] for g in gold) / sum(weights)
