"""``multiple_choice``: zero/few-shot multiple choice on items from your own file, scored as
lm-evaluation-harness scores its ``multiple_choice`` tasks (by pseudo-log-likelihood for a
bidirectional model: see ``readers``).

An item is one record of a JSONL or parquet file (read by the ``jsonl`` / ``parquet`` sources):
a context (a string), its choices (a list of at least two strings) and the gold answer, as the
choice's index or as its text; the field names are configurable. Its example id is the
``id_field`` value, else a hash of its content (context, choices, gold index), so rows pair
across variants, seeds and tokenizers and the same item in a JSONL and a parquet file has one id.

The context is lm-eval's: ``num_fewshot`` shots, each ``context + target_delimiter + gold
choice + separator``, then the item's context; the shots are drawn from ``fewshot_path`` per item
by a stream seeded by (``fewshot_seed``, item id), never the item itself, the same for every run.
Choice ``j`` is scored as the continuation ``target_delimiter + choice_j`` after ``<bos>`` +
context, encoded by ``encode_pair`` (lm-eval's loglikelihood convention). A context too long for
the model is cut on the left after ``<bos>`` (lm-eval cuts on the left too). No context or choice
may hold ``<unk>``: one that would is refused in one line, naming the item.

Rows: the scores of ``transferlab.evaluate.metrics``: ``correct`` (lm-eval's acc), ``acc_norm``
(the argmax of the log-likelihood divided by the choice's length in ``normalization`` units:
``chars``, lm-eval's acc_norm, the default, or ``bytes``, lm-eval's acc_bytes, both of the
choice text without the delimiter; or ``tokens`` of the scored continuation), ``p_correct``,
``margin``, ``norm_p_correct``. Read by pseudo-log-likelihood, the choices are ranked by it and
``p_correct`` is a softmax over it, not a probability the model gives. ``prediction`` is the
chosen choice, ``target`` the gold one, ``group`` the ``group_field`` value (default ``all``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import TASKS
from transferlab.config.schemas import TaskConfig
from transferlab.data.sources import JsonlConfig, ParquetConfig, SourceError, SourceStats
from transferlab.data.sources.records import RecordSourceConfig
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import Subject, Task
from transferlab.evaluate.code_tasks import token_budget
from transferlab.evaluate.continuation import encode_pair
from transferlab.evaluate.metrics import ACCURACY, MARGIN, NORM_P_CORRECT, P_CORRECT, choice_scores
from transferlab.evaluate.qa import check_known, example_rng
from transferlab.evaluate.readers import READINGS
from transferlab.evaluate.results import ExampleResult
from transferlab.evaluate.score import Request

Normalization = Literal["chars", "bytes", "tokens"]
RECORD_SUFFIXES = {".jsonl": JsonlConfig, ".jsonl.gz": JsonlConfig, ".parquet": ParquetConfig}

# acc_norm as this task computes it: per unit of the configured ``normalization``.
ACC_NORM = MetricSpec(
    "acc_norm", True, (0.0, 1.0), "1 when the top choice per unit of length (normalization) is gold"
)


@TASKS.register("multiple_choice")
class MultipleChoiceConfig(TaskConfig):
    name: Literal["multiple_choice"] = "multiple_choice"
    uses_world: ClassVar[bool] = False
    readings: ClassVar[tuple[str, ...]] = READINGS
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        ACCURACY,
        ACC_NORM,
        P_CORRECT,
        MARGIN,
        NORM_P_CORRECT,
    )
    path: str = Field(min_length=1)  # .jsonl, .jsonl.gz or .parquet (a file or a glob)
    context_field: str = Field(default="context", min_length=1)  # the field holding the context
    choices_field: str = Field(default="choices", min_length=1)  # a list of >= 2 strings
    gold_field: str = Field(default="gold", min_length=1)  # the answer: its index or its text
    id_field: str | None = Field(default=None, min_length=1)  # None: a hash of the content
    group_field: str | None = Field(default=None, min_length=1)  # None: every row in "all"
    fewshot_path: str | None = None  # items to draw shots from (may be ``path`` itself)
    num_fewshot: int = Field(default=0, ge=0)  # shots before each item (from fewshot_path)
    fewshot_seed: int = 0  # draws each item's shots, the same for every run
    separator: str = "\n\n"  # after each shot (lm-eval's fewshot_delimiter)
    target_delimiter: str = " "  # before each answer (lm-eval's target_delimiter)
    normalization: Normalization = "chars"  # acc_norm's length unit; chars is lm-eval's
    max_items: int | None = Field(default=None, gt=0)  # None: every item of the file
    max_tokens: int = Field(default=2048, ge=2)  # per context + choice; lowered to max_seq_len
    batch_size: int = Field(default=32, gt=0)  # sequences (context + one choice) per forward

    @field_validator("path", "fewshot_path")
    @classmethod
    def _record_file(cls, value: str | None) -> str | None:
        if value is not None:
            record_source(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MultipleChoiceConfig:
        named = [self.context_field, self.choices_field, self.gold_field]
        named += [f for f in (self.id_field, self.group_field) if f is not None]
        if len(set(named)) != len(named):
            raise ValueError(
                f"multiple_choice fields {named} repeat a name; context_field, choices_field, "
                "gold_field, id_field and group_field must name different fields"
            )
        if self.num_fewshot and self.fewshot_path is None:
            raise ValueError(
                f"num_fewshot={self.num_fewshot} needs fewshot_path, the items to draw shots "
                "from; set it (it may be path itself: an item is never its own shot)"
            )
        return self

    def input_files(self) -> list[Path]:
        paths = [p for p in (self.path, self.fewshot_path) if p is not None]
        return [file for p in paths for file in record_source(p)(path=p).input_files()]

    def build(self) -> MultipleChoiceTask:
        return MultipleChoiceTask(self)


@dataclass(frozen=True)
class Item:
    """One multiple-choice item, as its file holds it (the gold as an index)."""

    id: str
    context: str
    choices: tuple[str, ...]
    gold: int
    group: str

    @property
    def answer(self) -> str:
        return self.choices[self.gold]


@dataclass(frozen=True)
class ChoiceItem:
    """An item with its few-shot context, as text and as a ``score_choices`` request."""

    item: Item
    context: str  # the shots, then the item's context
    request: Request


def record_source(path: str) -> type[RecordSourceConfig]:
    """The source kind that reads ``path``, by its suffix; else a one-line error."""
    for suffix, kind in RECORD_SUFFIXES.items():
        if path.endswith(suffix):
            return kind
    raise ValueError(
        f"multiple_choice reads .jsonl, .jsonl.gz or .parquet files; got path {path!r}: convert "
        "the items to one of them (a glob such as 'items/*.jsonl' also works)"
    )


def read_items(cfg: MultipleChoiceConfig, path: str, limit: int | None = None) -> list[Item]:
    """The items of ``path`` in file order (the first ``limit``); a one-line error for a record
    that is no item, naming the field and the option that names it."""
    source = record_source(path)(
        path=path, text_field=cfg.context_field, id_field=cfg.id_field, limit=limit
    )
    stats = SourceStats()
    try:
        docs = list(source.iter_documents(stats))
    except SourceError as err:  # the source's text field is this task's context field
        raise ValueError(
            f"{cfg.task_name}: {str(err).replace('set text_field', 'set context_field')}"
        ) from err
    if stats.total_skipped:
        needs = f"a non-empty string {cfg.context_field!r} (context_field)"
        if cfg.id_field:
            needs += f" and an {cfg.id_field!r} (id_field)"
        raise ValueError(
            f"{cfg.task_name}: {stats.total_skipped} record(s) of {path} are no items "
            f"({stats.summary()}); each needs {needs}: fix the records or the field names"
        )
    items = [_item(cfg, doc.id, doc.text, doc.metadata["fields"]) for doc in docs]
    if not items:
        raise ValueError(f"{cfg.task_name}: {path} holds no item; add records to it")
    seen: dict[str, Item] = {}
    for item in items:
        if item.id in seen:
            raise ValueError(
                f"{cfg.task_name}: two items of {path} have id {item.id!r} (rows pair by it); "
                "remove the duplicate or give each item its own id_field value"
            )
        seen[item.id] = item
    return items


def _item(cfg: MultipleChoiceConfig, where: str, context: str, fields: dict[str, Any]) -> Item:
    """The item of one record (``where`` names it: its id, or its place in the file)."""

    def field(name: str, option: str) -> Any:
        if name not in fields:
            available = [cfg.context_field, *([cfg.id_field] if cfg.id_field else []), *fields]
            raise ValueError(
                f"{cfg.task_name}: record {where} has no field {name!r} (fields: "
                f"{', '.join(available)}); set {option} to one of them"
            )
        return fields[name]

    choices = field(cfg.choices_field, "choices_field")
    if not isinstance(choices, list) or len(choices) < 2:
        raise ValueError(
            f"{cfg.task_name}: record {where}: {cfg.choices_field!r} is {choices!r}; it must be "
            "a list of at least two strings"
        )
    if not all(isinstance(c, str) and c for c in choices):
        raise ValueError(
            f"{cfg.task_name}: record {where}: every choice must be a non-empty string; "
            f"got {choices!r}"
        )
    gold = _gold_index(field(cfg.gold_field, "gold_field"), choices, f"record {where}", cfg)
    group = str(field(cfg.group_field, "group_field")) if cfg.group_field else "all"
    item_id = where if cfg.id_field else content_id(context, choices, gold)
    return Item(item_id, context, tuple(choices), gold, group)


def _gold_index(gold: Any, choices: list[str], where: str, cfg: MultipleChoiceConfig) -> int:
    """``gold`` as an index into ``choices``: an index itself, or the text of one choice."""
    if isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(choices):
        return gold
    if isinstance(gold, str) and choices.count(gold) == 1:
        return choices.index(gold)
    raise ValueError(
        f"{cfg.task_name}: {where}: gold {gold!r} ({cfg.gold_field!r}) is neither an index "
        f"below {len(choices)} nor the text of exactly one choice; fix the record"
    )


def content_id(context: str, choices: Sequence[str], gold: int) -> str:
    """A stable id of an item's content: the same item has it in any file and for any model."""
    content = json.dumps([context, list(choices), gold], ensure_ascii=False)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


def draw_shots(item: Item, pool: Sequence[Item], n: int, seed: int) -> list[Item]:
    """``n`` items of ``pool`` other than ``item``, drawn by a stream of the item's own."""
    if n == 0:
        return []
    candidates = [shot for shot in pool if shot.id != item.id]
    if len(candidates) < n:
        raise ValueError(
            f"multiple_choice: num_fewshot={n} but fewshot_path holds only {len(candidates)} "
            f"other item(s) for item {item.id}; lower num_fewshot or add shots"
        )
    return example_rng(seed, "shots", item.id).sample(candidates, n)


def fewshot_context(cfg: MultipleChoiceConfig, item: Item, shots: Sequence[Item]) -> str:
    """lm-eval's few-shot context: each shot answered and followed by the separator, then the
    item's context."""
    answered = [shot.context + cfg.target_delimiter + shot.answer for shot in shots]
    return "".join(text + cfg.separator for text in answered) + item.context


def build_items(
    cfg: MultipleChoiceConfig, tokenizer: TextTokenizer, budget: int
) -> list[ChoiceItem]:
    """The items of ``cfg`` with their requests, each within ``budget`` tokens per context +
    choice; the same config gives the same contexts for every model."""
    items = read_items(cfg, cfg.path, cfg.max_items)
    pool = read_items(cfg, cfg.fewshot_path) if cfg.num_fewshot and cfg.fewshot_path else []
    built = []
    for item in items:
        context = fewshot_context(
            cfg, item, draw_shots(item, pool, cfg.num_fewshot, cfg.fewshot_seed)
        )
        built.append(ChoiceItem(item, context, _request(cfg, tokenizer, item, context, budget)))
    return built


def _request(
    cfg: MultipleChoiceConfig, tokenizer: TextTokenizer, item: Item, context: str, budget: int
) -> Request:
    pairs = [encode_pair(tokenizer, context, cfg.target_delimiter + c) for c in item.choices]
    context_ids, choices = pairs[0][0], [ids for _, ids in pairs]
    for choice, ids in zip(item.choices, choices, strict=True):
        if not ids or len(ids) >= budget:
            raise ValueError(
                f"{cfg.task_name}: choice {choice!r} of item {item.id} is {len(ids)} tokens; a "
                f"choice needs 1 to {budget - 1} (max_tokens, or the model's max_seq_len)"
            )
        check_known(tokenizer, ids, cfg.task_name, f"choice {choice!r} of item {item.id}")
    room = budget - max(map(len, choices))
    if len(context_ids) > room:  # keep <bos> and the end of the context, which leads in
        context_ids = [context_ids[0], *context_ids[len(context_ids) - room + 1 :]]
    check_known(tokenizer, context_ids, cfg.task_name, f"the context of item {item.id}")
    return context_ids, choices


class MultipleChoiceTask(Task[MultipleChoiceConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        """Rows for ``cfg``'s items; the subject's world and seed are unused (the items and
        shots are the same for every run)."""
        cfg = self.cfg
        built = build_items(cfg, subject.tokenizer, token_budget(subject.model, cfg.max_tokens))
        logprobs = subject.reader.score_choices(
            subject.model, [b.request for b in built], subject.tokenizer.special, cfg.batch_size
        )
        return [
            _row(cfg, choice_item, scores, subject.run_id).to_dict()
            for choice_item, scores in zip(built, logprobs, strict=True)
        ]


def norm_lengths(
    normalization: Normalization, choices: Sequence[str], encoded: Sequence[Sequence[int]]
) -> list[int]:
    """What acc_norm divides each choice's log-likelihood by: its characters or UTF-8 bytes
    (of the choice text, as lm-eval's acc_norm and acc_bytes), or its scored tokens."""
    if normalization == "chars":
        return [len(choice) for choice in choices]
    if normalization == "bytes":
        return [len(choice.encode("utf-8")) for choice in choices]
    return [len(ids) for ids in encoded]


def _row(
    cfg: MultipleChoiceConfig, choice_item: ChoiceItem, logprobs: list[float], run_id: str
) -> ExampleResult:
    item, encoded = choice_item.item, choice_item.request[1]
    scores = choice_scores(
        logprobs,
        item.gold,
        n_chars=norm_lengths(cfg.normalization, item.choices, encoded),
        n_tokens=[len(ids) for ids in encoded],
    )
    return ExampleResult(
        run_id=run_id,
        task=cfg.task_name,
        example_id=item.id,
        group=item.group,
        split="test",
        prediction=item.choices[scores.prediction],
        target=item.answer,
        metrics=scores.metrics(),
    )
