"""``code_function_name``: which name does a held-out standard-library function really have?

Each example is a top-level function from a held-out file (see ``code_tasks``), cut around its
name in the ``def`` line: the *head* (decorators and ``def`` or ``async def``), the *name* with
the whitespace before it, and the *rest* (``(args):`` and the body). The context is ``<bos>`` +
head; choice ``j`` is the function as written but named ``name_j``: ``" " + name_j + rest``. The
model thus scores the whole function under each name, and picking the highest
``log p(name) + log p(rest | name)`` is picking the most probable name given the code (Bayes),
not matching a string: a function is used only if its name occurs nowhere else in its text as a
whole word (no recursive call, no mention in its docstring), and a distractor only if it occurs
nowhere in the text either, so no choice is echoed by the code. A bidirectional model ranks
the names by pseudo-log-likelihood instead (see ``readers``).

Distractors are ``n_choices - 1`` names of other eligible held-out functions, drawn per example
from a stream seeded by (``seed``, example id). Only functions whose name is unique among the
eligible ones are examples, so every name is the answer exactly once and a model that knows only
how common names are is at chance (``1 / n_choices``).
Distractors are not restricted to names the pretraining text shows: the answers are held-out
names too, and only about 9% of them occur in the pretraining side's text (default modules, 9.7%
of the distractors drawn this way), so keeping only familiar distractors would make the answer
the unfamiliar choice. Drawn from the answers' own pool, both sides are equally familiar; with
byte-level BPE no choice is unknown.

Lengths: the context keeps at most half of the token budget (``max_tokens``, lowered to the
model's ``max_seq_len``), cut from the left after ``<bos>``; the rest is cut on the right so
every choice (name + rest) fits, the same rest tokens for every choice. The name and the rest
are encoded separately; a name is followed by ``(`` (or ``[``), where both tokenizers split
anyway, so this is how the whole text tokenizes.

Rows: ``prediction`` the chosen name, ``target`` the real one, group the top-level module;
declared metrics: the scores of ``transferlab.evaluate.metrics`` (``CHOICE_METRICS``;
``acc_norm`` divides by the characters of the scored choice, truncated rest included).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import TASKS
from transferlab.data.sources import TextDocument
from transferlab.data.tokenizer import TextTokenizer
from transferlab.evaluate.base import Subject, Task
from transferlab.evaluate.code_tasks import (
    CodeTaskConfig,
    describe_corpus,
    sample,
    split_functions,
    token_budget,
    top_module,
)
from transferlab.evaluate.metrics import CHOICE_METRICS, choice_scores
from transferlab.evaluate.qa import check_known
from transferlab.evaluate.readers import READINGS
from transferlab.evaluate.results import ExampleResult
from transferlab.evaluate.score import Request

WORD = re.compile(r"\w+")  # identifiers are maximal runs of word characters


@TASKS.register("code_function_name")
class CodeFunctionNameConfig(CodeTaskConfig):
    name: Literal["code_function_name"] = "code_function_name"
    readings: ClassVar[tuple[str, ...]] = READINGS
    n_choices: int = Field(default=4, ge=2)  # the real name and n_choices - 1 other names
    max_examples: int | None = Field(default=200, gt=0)  # None: every eligible function
    metrics: ClassVar[tuple[MetricSpec, ...]] = CHOICE_METRICS

    def build(self) -> CodeFunctionNameTask:
        return CodeFunctionNameTask(self)


@dataclass(frozen=True)
class NamedFunction:
    """A function's text cut around its name: ``head + gap + name + rest == doc.text``."""

    doc: TextDocument
    head: str
    gap: str
    rest: str

    @property
    def name(self) -> str:
        return self.doc.metadata["name"]


@dataclass(frozen=True)
class NameExample:
    """One multiple-choice example, as text and as a ``score_choices`` request."""

    function: NamedFunction
    choices: list[str]  # candidate names
    gold: int
    request: Request
    n_chars: list[int]  # characters of each choice as scored


def cut_name(doc: TextDocument) -> NamedFunction | None:
    """``doc`` cut at the name of its ``def`` line; None when the name occurs anywhere else."""
    name = doc.metadata["name"]
    if WORD.findall(doc.text).count(name) != 1:
        return None
    match = re.search(rf"^((?:async[ \t]+)?def)([ \t]+){re.escape(name)}\b", doc.text, re.M)
    if match is None:
        return None
    head = doc.text[: match.end(1)]  # decorators included
    return NamedFunction(doc, head, match.group(2), doc.text[match.end() :])


def eligible_functions(cfg: CodeTaskConfig) -> list[NamedFunction]:
    """The held-out functions that can be examples (and the pool of distractor names)."""
    cut = [fn for fn in map(cut_name, split_functions(cfg).heldout) if fn is not None]
    counts = Counter(fn.name for fn in cut)
    return [fn for fn in cut if counts[fn.name] == 1]


def draw_names(
    function: NamedFunction, pool: list[str], n_choices: int, rng: random.Random
) -> tuple[list[str], int]:
    """(names, index of the real one): the real name and ``n_choices - 1`` distinct pool names
    that occur nowhere in the function's text, in a random order."""
    words = set(WORD.findall(function.doc.text))  # the real name is among them
    candidates = [name for name in pool if name not in words]
    if len(candidates) < n_choices - 1:
        raise ValueError(
            f"code_function_name: only {len(candidates)} distractor names for "
            f"{function.doc.id!r} but n_choices={n_choices}; lower n_choices or add modules"
        )
    choices = [function.name, *rng.sample(candidates, n_choices - 1)]
    rng.shuffle(choices)
    return choices, choices.index(function.name)


def encode_choices(
    function: NamedFunction, choices: list[str], tokenizer: TextTokenizer, budget: int
) -> tuple[Request, list[int]]:
    """(request, characters per choice) within ``budget`` tokens per context + choice."""
    context = [tokenizer.special.bos, *tokenizer.encode(function.head)]
    keep = budget // 2
    if len(context) > keep:  # keep the end, which leads into the name
        context = [tokenizer.special.bos, *context[len(context) - (keep - 1) :]]
    names = [tokenizer.encode(function.gap + name) for name in choices]
    room = max(budget - len(context) - max(map(len, names)), 0)
    rest = tokenizer.encode(function.rest)[:room]
    rest_chars = len(tokenizer.decode(rest))
    n_chars = [len(function.gap + name) + rest_chars for name in choices]
    return (context, [ids + rest for ids in names]), n_chars


def build_name_examples(
    cfg: CodeFunctionNameConfig, tokenizer: TextTokenizer, budget: int
) -> list[NameExample]:
    """The examples of ``cfg``, in corpus order; the same config gives the same examples."""
    functions = eligible_functions(cfg)
    if len(functions) < cfg.n_choices:
        raise ValueError(
            f"code_function_name: {len(functions)} eligible held-out function(s) for "
            f"n_choices={cfg.n_choices} ({describe_corpus(cfg)}); add modules or raise "
            "heldout_fraction"
        )
    pool = [fn.name for fn in functions]
    by_id = {fn.doc.id: fn for fn in functions}
    kept = sample([fn.doc for fn in functions], cfg.max_examples, cfg.seed, "examples")
    examples = []
    for doc in kept:
        function = by_id[doc.id]
        rng = random.Random(f"choices:{cfg.seed}:{doc.id}")
        choices, gold = draw_names(function, pool, cfg.n_choices, rng)
        request, n_chars = encode_choices(function, choices, tokenizer, budget)
        examples.append(NameExample(function, choices, gold, request, n_chars))
    return examples


class CodeFunctionNameTask(Task[CodeFunctionNameConfig]):
    def read(self, subject: Subject) -> list[dict[str, Any]]:
        """Rows for ``cfg``'s examples; the subject's world and seed are unused (see
        ``code_tasks``)."""
        cfg = self.cfg
        examples = build_name_examples(
            cfg, subject.tokenizer, token_budget(subject.model, cfg.max_tokens)
        )
        requests = [ex.request for ex in examples]
        for example, (context, choices) in zip(examples, requests, strict=True):
            scored = [*context, *(token for choice in choices for token in choice)]
            check_known(
                subject.tokenizer, scored, cfg.task_name, f"example {example.function.doc.id}"
            )
        logprobs = subject.reader.score_choices(
            subject.model, requests, subject.tokenizer.special, cfg.batch_size
        )
        return [
            _row(example, scores, subject.run_id, cfg.task_name).to_dict()
            for example, scores in zip(examples, logprobs, strict=True)
        ]


def _row(example: NameExample, logprobs: list[float], run_id: str, task: str) -> ExampleResult:
    scores = choice_scores(
        logprobs,
        example.gold,
        n_chars=example.n_chars,
        n_tokens=[len(ids) for ids in example.request[1]],
    )
    function = example.function
    return ExampleResult(
        run_id=run_id,
        task=task,
        example_id=function.doc.id,
        group=top_module(function.doc),
        split="test",
        prediction=example.choices[scores.prediction],
        target=function.name,
        metrics=scores.metrics(),
    )
