"""``sample_score``: sample continuations of prompts and judge each with a registered scorer.

Each prompt gets ``n_samples`` continuations from ``evaluate.generate`` (temperature, top-k,
top-p; ``temperature: 0`` is greedy and then takes one sample), each scored by ``scorer`` (e.g.
``{name: pii}`` or ``{name: regex, pattern: ...}``): one row per sample. The prompt is ``<bos>``,
then the ``prefix_tokens`` (control tokens such as ``<|good|>``, found by name in the run's
tokenizer, which holds them when the run's objective added them), then the prompt's text:

- ``prompts: bos``: no text (unconditional samples, as Korbak et al. 2023 measure them);
- ``prompts: names``: each person's full name (the opening of a biography) in the bios world;
- ``prompts: file``: the ``prompt`` field of each record of a JSONL file (``path``; an ``id``
  field names the prompt, else its line).

``n_prompts`` keeps the first prompts. The sampling seed is a hash of (``seed``, the run's seed):
the variants of one seed draw from the same streams, and a sample depends only on the model, its
prompt, its index and that seed, not on the batch (``evaluate.sampling``).

Rows: ``example_id`` = ``<prompt id>:<sample index>`` (the prompt id is ``bos``, the person id,
or the record's id), ``group`` = ``prompts``, ``split`` = the person's QA split (``test``
otherwise), ``prediction`` = the sampled text (special tokens written out), ``target`` = the
prompt as text. Metrics: ``undesirable`` (1 when ``score > threshold``; its mean is the rate of
undesirable samples, lower is better) and ``score`` (the scorer's value, a count for content
scorers). Causal and prefix models generate (a prefix model reads the prompt as its prefix); a
bidirectional model generates nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import SCORERS, TASKS
from transferlab.config.schemas import TaskConfig
from transferlab.evaluate.base import Subject, Task, require_bios
from transferlab.evaluate.generate import generate
from transferlab.evaluate.qa import check_known
from transferlab.evaluate.results import ExampleResult
from transferlab.evaluate.sampling import Sampling
from transferlab.scorers.base import ScorerConfig
from transferlab.train.checkpoint import read_run_config
from transferlab.train.rng import derive_seed

PromptKind = Literal["bos", "names", "file"]


class _UsesWorld:
    """``uses_world``: True on the class (its default prompts are the world's), on a config
    whether its prompts or its scorer read the world (file prompts with a format scorer do not,
    so such a task also evaluates runs on real text)."""

    def __get__(self, config: Any, owner: type | None = None) -> bool:
        return config is None or config.prompts != "file" or config.scorer.uses_world()


@TASKS.register("sample_score")
class SampleScoreConfig(TaskConfig):
    """Samples ``n_samples`` continuations per prompt and scores each with ``scorer``: one row
    per sample, ``undesirable`` when its score exceeds ``threshold``."""

    name: Literal["sample_score"] = "sample_score"
    uses_world: ClassVar[Any] = _UsesWorld()
    readings: ClassVar[tuple[str, ...]] = ("causal", "prefix")
    reading_limit: ClassVar[str] = "samples continuations, which a bidirectional model does not"
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("undesirable", False, (0.0, 1.0), "1 when the sample's score exceeds threshold"),
        MetricSpec("score", False, (0.0, None), "the scorer's value of the sample"),
    )
    scorer: SCORERS.type(ScorerConfig)  # what judges each sample, e.g. {name: pii}
    threshold: float = 0.0  # a sample is undesirable when its score exceeds this
    prompts: PromptKind = "bos"  # bos: unconditional; names: bios people's names; file: path
    path: str | None = Field(default=None, min_length=1)  # JSONL with a "prompt" field
    n_prompts: int | None = Field(default=None, gt=0)  # the first prompts; None: all
    n_samples: int = Field(default=8, ge=1)  # continuations per prompt
    prefix_tokens: list[str] = Field(default_factory=list)  # after <bos>, e.g. ["<|good|>"]
    # first after <bos>: the tokens the run's objective conditions generation on (conditional:
    # <|good|>; none for clm), so one task samples every variant as its objective means it
    objective_prefix: bool = False
    max_new_tokens: int = Field(default=64, ge=1)  # per continuation (it may end at <eos>)
    temperature: float = Field(default=1.0, ge=0)  # 0: greedy
    top_k: int | None = Field(default=None, ge=1)  # sample among the k likeliest; None: all
    top_p: float | None = Field(default=None, gt=0, le=1)  # nucleus; None: no limit
    seed: int = 0  # with the run's seed, draws the samples
    batch_size: int = Field(default=64, gt=0)  # continuations generated at once

    @model_validator(mode="after")
    def _consistent(self) -> SampleScoreConfig:
        Sampling(self.temperature, self.top_k, self.top_p)  # its one-line errors
        if self.temperature == 0 and self.n_samples > 1:
            raise ValueError(
                f"temperature=0 (greedy) gives one continuation per prompt, not "
                f"n_samples={self.n_samples}; set n_samples: 1 or temperature > 0"
            )
        if (self.prompts == "file") != (self.path is not None):
            raise ValueError(
                f"prompts: {self.prompts} with path={self.path!r}: path (a JSONL file with a "
                "'prompt' field) is read with prompts: file, and only then"
            )
        if self.path is not None and not Path(self.path).is_file():
            raise ValueError(f"path {self.path!r} is not a file; give the JSONL of prompts")
        return self

    def input_files(self) -> list[Path]:
        return [Path(self.path)] if self.path is not None else []

    def build(self) -> SampleScoreTask:
        return SampleScoreTask(self)


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    split: str  # the person's QA split for a name, else "test"


class SampleScoreTask(Task[SampleScoreConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        cfg = self.cfg
        scorer = cfg.scorer.build(subject.world)
        prompts = read_prompts(cfg, subject.world)[: cfg.n_prompts]
        head = [subject.tokenizer.special.bos, *prefix_ids(cfg, subject)]
        encoded = []
        for prompt in prompts:
            ids = head + subject.tokenizer.encode(prompt.text)
            check_known(subject.tokenizer, ids, cfg.task_name, f"prompt {prompt.id!r}")
            encoded.append(ids)
        # Sample j of a prompt is its j-th repeat: generate seeds each repeat a stream of its own.
        repeated = [ids for ids in encoded for _ in range(cfg.n_samples)]
        continuations = generate(
            subject.model,
            repeated,
            cfg.max_new_tokens,
            eos_id=subject.tokenizer.special.eos,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            seed=derive_seed("sample_score", cfg.seed, subject.seed),
            batch_size=cfg.batch_size,
            attention=subject.reader.attention,
        )
        texts = [subject.tokenizer.decode(ids) for ids in continuations]
        scores = scorer.score_batch(texts)
        rows = []
        for index, (text, score) in enumerate(zip(texts, scores, strict=True)):
            prompt, sample = prompts[index // cfg.n_samples], index % cfg.n_samples
            if score < 0:
                raise ValueError(
                    f"{cfg.task_name}: scorer {cfg.scorer.name!r} gave {score} < 0; this task "
                    "reads scorers of undesirable content, which count what they find"
                )
            target = subject.tokenizer.decode(encoded[index // cfg.n_samples])
            rows.append(_row(cfg, subject.run_id, prompt, sample, text, score, target))
        return rows


def read_prompts(cfg: SampleScoreConfig, world: Any) -> list[Prompt]:
    """The prompts of ``cfg`` in order (before ``n_prompts`` keeps the first)."""
    if cfg.prompts == "bos":
        return [Prompt("bos", "", "test")]
    if cfg.prompts == "names":
        people = require_bios(world, cfg.task_name).people
        return [Prompt(str(p.person_id), p.full_name, p.split) for p in people]
    return _file_prompts(cfg)


def _file_prompts(cfg: SampleScoreConfig) -> list[Prompt]:
    """The records of ``cfg.path``: a string ``prompt`` each, ids (``id``, else the line
    number) distinct, since rows pair across runs by them."""
    prompts = []
    lines = Path(str(cfg.path)).read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise ValueError(
                f"{cfg.task_name}: line {number} of {cfg.path} has no string field 'prompt'; "
                'write one JSON object per line, e.g. {"prompt": "Once upon a time"}'
            )
        prompts.append(Prompt(str(record.get("id", number)), record["prompt"], "test"))
    ids = [p.id for p in prompts]
    if repeated := sorted({i for i in ids if ids.count(i) > 1}):
        raise ValueError(
            f"{cfg.task_name}: prompt ids {repeated} repeat in {cfg.path}; give each its own id"
        )
    if not prompts:
        raise ValueError(f"{cfg.task_name}: {cfg.path} holds no prompt; add records to it")
    return prompts


def prefix_ids(cfg: SampleScoreConfig, subject: Subject) -> list[int]:
    """The ids of the prompt's tokens after ``<bos>`` in the run's tokenizer: with
    ``objective_prefix`` the run objective's ``generation_prefix()`` (read from the run's
    config), then ``cfg.prefix_tokens``; a one-line error for a missing one."""
    tokenizer, tokens = subject.tokenizer, list(cfg.prefix_tokens)
    if cfg.objective_prefix:
        if subject.run_dir is None:
            raise ValueError(
                f"{cfg.task_name}: objective_prefix reads the run's objective, and this model "
                "comes without its run; give prefix_tokens instead"
            )
        objective = read_run_config(subject.run_dir).objective
        tokens = [*objective.generation_prefix(), *tokens]
    ids = []
    for token in tokens:
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(
                f"{cfg.task_name}: prefix token {token!r} is not in the run's tokenizer; it "
                "holds the tokens its objective adds (e.g. conditional's <|good|>): sample a "
                "run of that objective or drop the token from prefix_tokens"
            )
        ids.append(token_id)
    return ids


def _row(
    cfg: SampleScoreConfig,
    run_id: str,
    prompt: Prompt,
    sample: int,
    text: str,
    score: float,
    target: str,
) -> dict[str, Any]:
    return ExampleResult(
        run_id=run_id,
        task=cfg.task_name,
        example_id=f"{prompt.id}:{sample}",
        group=cfg.prompts,
        split=prompt.split,
        prediction=text,
        target=target,
        metrics={"undesirable": float(score > cfg.threshold), "score": score},
    ).to_dict()
