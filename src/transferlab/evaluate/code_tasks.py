"""What the tasks on real code share: the standard library's functions, split by file.

Every selected source file is on one side of a seeded split (``data.sources.is_heldout``): *held
out* when ``sha256(f"{seed}:{path}")``, read as a number in [0, 1), is below
``heldout_fraction``, else on the *pretraining* side. Tasks evaluate held-out functions; a model
meant to be judged on them pretrains only on the pretraining side: a ``python_stdlib`` source with
``side: pretraining`` and the same ``heldout_fraction`` and ``heldout_seed`` (what
``pretraining_documents(cfg)`` streams), so no held-out file is ever seen in pretraining. A held-out
function whose exact text also occurs on the pretraining side (a copied helper) is dropped: it
would test memorization, not knowledge of code.

Examples are top-level functions (``def`` and ``async def``, not classes); an example's id is the
document id ``path::name`` and is stable across runs. The file set is that of the running
interpreter's standard library (or of ``root``), so it changes with the Python version.

These tasks need no synthetic world: ``run`` accepts any ``world`` (None included) and ignores it. Any
transferlab tokenizer works; a byte-level BPE covers code, while a word-level tokenizer trained
on another corpus (bios) maps most of it to ``<unk>``, which leaves little to tell examples apart.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, field_validator
from torch import nn

from transferlab.config.schemas import TaskConfig
from transferlab.data.sources import PythonStdlibConfig, TextDocument, is_heldout

# Packages of several files each (a single-file module is all on one side of the split), present
# in every Python 3.11+ and quick to parse: the default keeps a task to a few seconds.
DEFAULT_MODULES = (
    "asyncio",
    "concurrent",
    "email",
    "http",
    "importlib",
    "json",
    "logging",
    "multiprocessing",
    "unittest",
    "urllib",
    "xml",
)


class CodeTaskConfig(TaskConfig):
    """Fields shared by the tasks on standard-library code.

    ``modules``, ``include_tests`` and ``root`` select the corpus as ``PythonStdlibConfig`` does
    (``modules: null`` reads the whole standard library). ``heldout_fraction`` and ``seed``
    define the held-out split of files and every draw a task makes, so the examples are the same
    in every run; the ``seed`` passed to ``run`` (the training seed) is not used. ``max_tokens``
    caps the tokens of one scored sequence (lowered further to the model's ``max_seq_len``).
    """

    modules: list[str] | None = Field(default_factory=lambda: list(DEFAULT_MODULES))
    include_tests: bool = False  # also read the test packages (test, tests, idle_test)
    root: str | None = None  # the directory of Python sources read; None: this stdlib
    heldout_fraction: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 0  # the held-out split of files and every draw (not the run's seed)
    max_tokens: int = Field(default=256, ge=16)
    batch_size: int = Field(default=32, gt=0)  # sequences per forward
    uses_world: ClassVar[bool] = False

    @field_validator("modules")
    @classmethod
    def _some_modules(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("modules is empty; list module names or set it to null for all")
        return value

    def source(
        self,
        split: Literal["file", "function"] = "function",
        side: Literal["all", "pretraining", "heldout"] = "all",
    ) -> PythonStdlibConfig:
        """The corpus this task reads, per file or per top-level definition, on one side of
        the held-out split or both."""
        return PythonStdlibConfig(
            split=split,
            modules=self.modules,
            include_tests=self.include_tests,
            root=self.root,
            side=side,
            heldout_fraction=self.heldout_fraction,
            heldout_seed=self.seed,
        )

    def is_heldout(self, path: str) -> bool:
        return is_heldout(path, self.heldout_fraction, self.seed)


@dataclass(frozen=True)
class CodeSplit:
    """The selected top-level functions, by side of the file split, in corpus order."""

    pretraining: tuple[TextDocument, ...]
    heldout: tuple[TextDocument, ...]  # without exact copies of a pretraining-side function


def split_functions(cfg: CodeTaskConfig) -> CodeSplit:
    """The corpus's functions on each side of the split. Cached for the process's last few
    corpora: evaluating many runs in one process reads and parses the files once (and does not
    see files changed on disk meanwhile)."""
    return _split(cfg.source("function").model_dump_json(), cfg.heldout_fraction, cfg.seed)


@functools.lru_cache(maxsize=4)
def _split(source_json: str, fraction: float, seed: int) -> CodeSplit:
    pretraining, heldout, seen = [], [], set()
    for doc in PythonStdlibConfig.model_validate_json(source_json).iter_documents():
        if doc.metadata["kind"] != "function":
            continue
        if is_heldout(doc.metadata["path"], fraction, seed):
            heldout.append(doc)
        else:
            pretraining.append(doc)
            seen.add(doc.text)
    return CodeSplit(tuple(pretraining), tuple(doc for doc in heldout if doc.text not in seen))


def pretraining_documents(
    cfg: CodeTaskConfig, split: Literal["file", "function"] = "file"
) -> Iterator[TextDocument]:
    """Stream the pretraining side of ``cfg``'s corpus: whole files (module-level code
    included) or top-level definitions (functions and classes), never a held-out file.

    A file's side depends only on its path, ``heldout_fraction`` and ``seed``: pretraining on
    this with ``modules: null`` (the whole library) is safe for every code task with the same
    fraction and seed, whatever modules the task selects."""
    return cfg.source(split, side="pretraining").iter_documents()


def top_module(doc: TextDocument) -> str:
    """The top-level package or module of a document: ``email.mime.text`` -> ``email``."""
    return doc.metadata["module"].split(".")[0]


def sample(
    docs: Sequence[TextDocument], n: int | None, seed: int, purpose: str
) -> list[TextDocument]:
    """At most ``n`` of ``docs`` (all when ``n`` is None), in their order: the ``n`` first by a
    hash of (purpose, seed, id). A document's rank does not depend on the others, so a larger
    ``n`` keeps a superset and the same id is kept whatever order the corpus is read in."""
    if n is None or n >= len(docs):
        return list(docs)

    def rank(doc: TextDocument) -> bytes:
        return hashlib.sha256(f"{purpose}:{seed}:{doc.id}".encode()).digest()

    kept = {doc.id for doc in sorted(docs, key=rank)[:n]}
    return [doc for doc in docs if doc.id in kept]


def token_budget(model: nn.Module, max_tokens: int) -> int:
    """Tokens one input may have: ``max_tokens``, lowered to the model's ``max_seq_len`` when
    it declares one (a model built by transferlab does, in ``model.config``)."""
    limit = getattr(getattr(model, "config", None), "max_seq_len", None)
    return max_tokens if limit is None else min(max_tokens, limit)


def describe_corpus(cfg: CodeTaskConfig) -> str:
    """The corpus settings, for error messages."""
    return (
        f"modules={cfg.modules}, include_tests={cfg.include_tests}, "
        f"heldout_fraction={cfg.heldout_fraction}, seed={cfg.seed}"
    )
