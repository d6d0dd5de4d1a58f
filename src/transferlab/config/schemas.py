"""Typed schemas of one pretraining run: world, tokenizer, data, model, objective, optimizer,
schedule and trainer. Component kinds (worlds, objectives, optimizers, schedules) are registered
subclasses of the base classes here; see ``transferlab.config.registry``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from transferlab.config.base import BaseConfig, ComponentConfig
from transferlab.config.metrics import MetricSpec
from transferlab.config.registry import (
    ATTENTIONS,
    CALLBACKS,
    LINEARS,
    MLPS,
    MODEL_PRESETS,
    NORMS,
    OBJECTIVES,
    OPTIMIZERS,
    SCHEDULES,
    SOURCES,
    WORLDS,
)

PositiveInt = Field(gt=0)
# numpy's and the loaders' generators take no negative seed: refused here, naming the field
Seed = Annotated[int, Field(ge=0)]
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_folder_name(name: str, used_as: str) -> str:
    """``name`` if it is one plain path component (so ``../x`` or ``a/b`` cannot write outside
    the folder it is joined to); else a ValueError saying what it names and how to fix it."""
    if not _FOLDER_NAME.fullmatch(name):
        raise ValueError(
            f"got {name!r}; expected a plain folder name for {used_as}: letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return name


# ----------------------------------------------------------------------------- component bases
class WorldConfig(ComponentConfig):
    """A synthetic world: a seeded generator of a pretraining corpus and downstream tasks."""

    seed: Seed = 0  # what the world's people, texts and task items are drawn from
    # Fields a world gained after worlds were first keyed, with the value that means "as
    # before": left out of the dict at that value, so the keys of the world's data stage, runs
    # and world directory (all hashes of this dict) stay what they were.
    added_fields: ClassVar[dict[str, Any]] = {}

    @model_serializer(mode="wrap")
    def _without_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for field, default in self.added_fields.items():
            if data.get(field, default) == default:
                data.pop(field, None)
        return data

    def build(self) -> Any:
        raise NotImplementedError


class ObjectiveConfig(ComponentConfig):
    """How a model learns from text (``build()`` gives an ``objectives.base.Objective``) and how
    it is read afterwards: ``attention`` is the attention it trains with, which decides how tasks
    score and probe the model (causal: log-likelihood; bidirectional: pseudo-log-likelihood)."""

    attention: ClassVar[Literal["causal", "bidirectional", "prefix"]] = "causal"

    def added_tokens(self) -> tuple[str, ...]:
        """Tokens this objective appends to the tokenizer's vocabulary (sentinels, mode or
        control tokens), in id order; see ``objectives.tokens``. Default: none."""
        return ()

    def generation_prefix(self) -> tuple[str, ...]:
        """Tokens after ``<bos>`` that generation as this objective means it is conditioned on
        (conditional training: ``<|good|>``); a sampling task reads them with
        ``objective_prefix``. Default: none."""
        return ()

    # Whether ``build`` needs the run's tokenizer and the world's entities (an
    # ``objectives.context.TextContext``): objectives that transform or score the text itself.
    needs_text: ClassVar[bool] = False

    def check(self, run: Any) -> None:
        """Raise a ValueError when this objective cannot train ``run`` (a ``RunConfig``), e.g.
        too few sentinels for its ``data.seq_len``, a generator too narrow for the model's
        heads. Default: nothing to check."""

    def build(self, special_ids: Any, vocab_size: int, text: Any = None) -> Any:
        """The objective; ``vocab_size`` is the tokenizer's (its added tokens follow it) and
        ``text`` the ``TextContext`` when ``needs_text`` (else None)."""
        raise NotImplementedError

    @property
    def reading(self) -> str:
        """How tasks read a model this objective trained (``evaluate.readers``): by its
        attention for the objectives that predict tokens; electra's "discriminator" has
        features but no token distribution."""
        return self.attention

    def build_networks(self, model: ModelConfig) -> Any:
        """The ``nn.Module`` the engine trains, checkpoints and resumes: the run's model for
        most objectives; an objective that trains networks of its own beside it (electra's
        generator) returns one module holding them all, whose ``transferred`` is the model
        tasks read (``objectives.networks``). Seed with ``torch.manual_seed`` beforehand."""
        from transferlab.models import build_model

        return build_model(model)

    def flops_per_token(self, model: ModelConfig, seq_len: int) -> int:
        """Training FLOPs per token of what this objective trains (``models.flops``): the
        model's; an objective with networks of its own counts theirs too."""
        from transferlab.models.flops import flops_per_token

        return flops_per_token(model, seq_len)


class ParamGroupConfig(BaseConfig):
    """Settings for the parameters whose names match ``pattern`` (``fnmatch``, case-sensitive,
    against names such as ``blocks.0.attn.qkv.weight``; ``*`` also crosses dots).
    ``weight_decay``: replaces the default (None keeps it); ``lr_scale``: multiplies the
    optimizer's learning rate for these parameters (through the schedule too)."""

    pattern: str = Field(min_length=1)  # fnmatch pattern over parameter names
    weight_decay: float | None = Field(default=None, ge=0)
    lr_scale: float = Field(default=1.0, gt=0)


class OptimizerConfig(ComponentConfig):
    """What every optimizer has: its lr, weight decay, clipping, and parameter groups
    (``optim.groups``): by default matrices decay and norm gains, biases and embeddings (unless
    ``decay_embeddings``) do not; ``groups`` overrides that by name, the first match winning."""

    lr: float = Field(default=1e-3, gt=0)  # peak learning rate (the schedule multiplies it)
    weight_decay: float = Field(default=0.1, ge=0)  # decoupled weight decay of the matrices
    grad_clip: float | None = Field(default=1.0, gt=0)  # max global gradient norm; None: none
    decay_embeddings: bool = False  # also decay the embeddings
    groups: list[ParamGroupConfig] = Field(default_factory=list)

    @field_validator("groups")
    @classmethod
    def _patterns_are_distinct(cls, groups: list[ParamGroupConfig]) -> list[ParamGroupConfig]:
        patterns = [group.pattern for group in groups]
        repeated = sorted({p for p in patterns if patterns.count(p) > 1})
        if repeated:
            raise ValueError(
                f"optimizer.groups repeat the pattern(s) {repeated}; the first match wins, so a "
                "repeat never applies: merge them into one entry"
            )
        return groups

    @model_serializer(mode="wrap")
    def _without_empty_groups(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when empty, so every config, task and fine-tuning keyed before groups existed
        # keeps its key (``groups: []`` means exactly what the configs before it meant).
        data = handler(self)
        if not self.groups:
            data.pop("groups", None)
        return data

    def build(self, model: Any) -> Any:
        raise NotImplementedError


class ScheduleConfig(ComponentConfig):
    """Learning-rate multiplier as a function of the step (0-based), pure so resume is exact."""

    warmup_steps: int = Field(default=0, ge=0)  # linear warmup steps from 0 to the full lr

    def build(self, max_steps: int) -> Any:
        raise NotImplementedError

    def check(self, max_steps: int) -> None:
        # A run of 0 steps (trainer.max_steps: 0) schedules nothing, so any warmup is fine.
        if max_steps and self.warmup_steps >= max_steps:
            raise ValueError(
                f"schedule.warmup_steps={self.warmup_steps} must be less than "
                f"trainer.max_steps={max_steps}"
            )


class CallbackConfig(ComponentConfig):
    """An extra callback on the training engine's hooks (``trainer.callbacks``), e.g. downstream
    evaluation every N steps or stability signals. ``build()`` returns a
    ``train.engine.Callback``. Most callbacks only record and never change the weights; a
    constraint (``lipschitz``) does change them, in its ``on_optimizer_step`` hook right after
    each optimizer step, and so changes the run's result (its config is in the run key like
    every callback's)."""

    def build(self) -> Any:
        raise NotImplementedError

    def check(self, run: RunConfig) -> None:
        """Raise ValueError when this callback cannot serve in ``run`` (checked on validation,
        so a mistake fails before any training)."""


class PartConfig(ComponentConfig):
    """A part of the model's blocks (attention, mlp, norm, linear layer), chosen in ``model``.

    The interface of each kind (build, parameter count, FLOPs, Hugging Face mapping) is in
    ``transferlab.models.parts.base``; here is only what validating a ``ModelConfig`` needs.
    """

    def check(self, model: ModelConfig) -> None:
        """Raise ValueError when this part cannot serve in ``model`` (checked on validation)."""


class TaskConfig(ComponentConfig):
    """A downstream evaluation: how a pretrained run is transferred (finetune, score, probe) to
    which examples, and with what metrics (``metrics``). ``build()`` returns an object whose
    ``run(...)`` returns one result row per example.

    ``label`` names the task in result rows (default: ``name``), so two configs of the same kind
    (say zero-shot and 5-shot scoring) can run in one experiment without their rows colliding.
    """

    label: str | None = None
    # The experiment stage whose runs this task evaluates (default: the last); not part of the
    # evaluation's key, which already holds the key of the run it reads.
    stage: str | None = None
    # Whether ``run`` reads the world it is given (tasks on real data do not, and are then
    # given None: building a world for nothing takes seconds).
    uses_world: ClassVar[bool] = True
    # The attention kinds (``ObjectiveConfig.attention`` of the run) whose models this task can
    # read, and why it cannot read the others, completing "<task name> ..." in the error that
    # refuses such a run before anything is trained.
    readings: ClassVar[tuple[str, ...]] = ("causal",)
    reading_limit: ClassVar[str] = "reads models causally"
    # The per-example metrics every row of the task carries (see ``config.metrics``); the
    # first is the task's headline, what a report shows for it when it is not compared on
    # the experiment's ``compare.metric``.
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    # Columns a row may carry beyond its identity and metrics that describe its example (a bios
    # person's population and exposures): what analyses break metrics down by, never compared.
    facets: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        names = [metric.name for metric in cls.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"{cls.__name__}.metrics {names} repeat a name; declare each once")

    def metric(self, name: str) -> MetricSpec | None:
        """The declaration of metric ``name``, None when the task does not declare it (a method
        of the config, not the class: some tasks' metrics depend on the config, see
        ``config.metrics.ConfigMetrics``)."""
        return next((metric for metric in self.metrics if metric.name == name), None)

    @property
    def task_name(self) -> str:
        return self.label or self.name

    def check_world(self, world: WorldConfig) -> None:
        """Raise ValueError when this task cannot ask about ``world`` (checked when an
        experiment is planned, before anything trains). Default: any world."""

    def input_files(self) -> list[Path]:
        """The user files the task reads (its items, its task YAMLs), whose bytes key its
        evaluations beside its config, so an edited file is evaluated again; none by default
        (tasks on a world), and then the key is the config's alone."""
        return []

    def build(self) -> Any:
        raise NotImplementedError


# ----------------------------------------------------------------------------- concrete schemas
class TokenizerConfig(BaseConfig):
    """The tokenizer trained on the run's corpus."""

    # word: whitespace-split words (unseen words become <unk>); bpe: byte-level BPE (no <unk>)
    kind: Literal["word", "bpe"] = "word"
    vocab_size: int = Field(default=8192, gt=8)  # at most this many tokens, specials included
    min_frequency: int = Field(default=1, ge=1)  # a word or merge seen fewer times is left out


class MixtureConfig(BaseConfig):
    """How many training tokens each domain (a source, named by its label or kind) contributes.

    ``weights``: relative token shares per domain (default: each domain's natural share);
    ``tokens``: the training-token budget (default: the natural total). A domain asked for more
    tokens than it has is repeated over several epochs (counted in ``info.json``), one asked for
    fewer is subsampled; documents are drawn by a seeded sampler. When ``weights`` are given, a
    domain of weight 0 (or not named) is left out of the run (``DataConfig.left_out``).
    """

    weights: dict[str, float] = Field(default_factory=dict)
    tokens: int | None = Field(default=None, gt=0)
    seed: Seed = 0  # draws the validation documents and the sampled training documents

    @model_validator(mode="after")
    def _weights_are_positive(self) -> MixtureConfig:
        if any(not w >= 0 for w in self.weights.values()) or (
            self.weights and not sum(self.weights.values()) > 0
        ):
            raise ValueError(f"mixture.weights {self.weights} must be >= 0 with a positive sum")
        return self


class DataWarningsConfig(BaseConfig):
    """When the data stage warns (in the terminal and in the report's data warnings), without
    changing the data: a domain the mixture repeats for more than ``max_epochs`` epochs (up to
    about 4 are nearly as good as new data, Muennighoff et al. 2023), and a curated domain of
    which curation kept less than ``min_kept_fraction`` of the documents it read."""

    max_epochs: float = Field(default=4.0, gt=0)  # warn when a domain repeats more than this
    # warn when curation keeps less than this share of a curated domain's documents
    min_kept_fraction: float = Field(default=0.01, ge=0, le=1)


class DataConfig(BaseConfig):
    """What the run trains on: the world's corpus (default), real-text ``sources`` mixed by
    ``mixture``, or an existing tokenized folder (``path``)."""

    seq_len: int = Field(default=128, gt=1)  # tokens per packed training sequence
    val_fraction: float = Field(default=0.02, ge=0, lt=1)  # documents held out for validation
    # Pretrain on real text instead of the world's corpus: streamed sources mixed by domain.
    sources: list[SOURCES.type(ComponentConfig, default="jsonl")] = Field(default_factory=list)
    mixture: MixtureConfig | None = None  # None: every domain at its natural share
    # What trains the tokenizer of a corpus of sources: the domains this run mixes in
    # ("variant"), or every domain of data.sources, weight 0 or not ("shared"), so variants that
    # differ only in mixture weights read their text with one tokenizer.
    tokenizer_scope: Literal["variant", "shared"] = "variant"
    warnings: DataWarningsConfig = Field(default_factory=DataWarningsConfig)  # when to warn
    # Or train on an existing tokenized folder (datatrove layout).
    path: str | None = None
    tokenizer_file: str | None = None  # the tokenizer.json that data.path was made with

    def left_out(self) -> list[str]:
        """The sources the mixture gives weight 0 (or names no weight for, when it names some):
        a run reads nothing of them, not even to train its tokenizer."""
        weights = self.mixture.weights if self.mixture else {}
        if not weights:
            return []
        return [s.source_name for s in self.sources if not weights.get(s.source_name, 0.0) > 0]

    @model_validator(mode="after")
    def _one_corpus(self) -> DataConfig:
        if self.path and not self.tokenizer_file:
            raise ValueError(
                "data.path needs data.tokenizer_file (the tokenizer.json it was made with)"
            )
        if self.path and self.sources:
            raise ValueError("data.path and data.sources both name a corpus; keep one")
        if self.mixture and not self.sources:
            raise ValueError("data.mixture needs data.sources to mix")
        names = [source.source_name for source in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"data.sources {names} repeat a name; give each a distinct label")
        unknown = sorted(set(self.mixture.weights) - set(names)) if self.mixture else []
        if unknown:
            raise ValueError(f"data.mixture.weights names {unknown}, not among sources {names}")
        if self.tokenizer_scope == "shared" and not self.sources:
            raise ValueError(
                "data.tokenizer_scope: shared trains one tokenizer on data.sources; give sources "
                "or drop the field"
            )
        if self.tokenizer_scope == "shared" and self.tokenizer_file:
            raise ValueError(
                "data.tokenizer_scope: shared trains a tokenizer, data.tokenizer_file reads one; "
                "keep one"
            )
        return self


class ModelConfig(BaseConfig):
    """Decoder transformer: its shape and the parts its blocks are made of (``{name: ...}`` from
    the registries ``ATTENTIONS``, ``MLPS``, ``NORMS``, ``LINEARS``; the defaults compose the
    dense Llama-style model). ``preset`` fills every field not given explicitly."""

    # The registry in the metadata names the kind for ``transferlab explain``; a name is looked
    # up (and refused when unknown) by ``_apply_preset``.
    preset: Annotated[str, MODEL_PRESETS] | None = None
    vocab_size: int | None = Field(default=None, gt=0)  # None: taken from the tokenizer
    d_model: int = Field(default=64, gt=0)  # width of the residual stream
    n_layers: int = Field(default=2, gt=0)  # transformer blocks
    n_heads: int = Field(default=4, gt=0)  # attention heads; must divide d_model
    d_ff: int | None = Field(default=None, gt=0)  # None: the mlp part's default width
    max_seq_len: int = Field(default=1024, gt=0)  # longest sequence; at least data.seq_len
    rope_theta: float = Field(default=10000.0, gt=0)  # base of the rotary embeddings
    norm_eps: float = Field(default=1e-5, gt=0)  # epsilon of the norms
    qk_norm: bool = False  # normalize queries and keys before attention (QK-norm)
    tie_embeddings: bool = True  # the output head shares the input embedding's weights
    init_std: float = Field(default=0.02, gt=0)  # std of the normal weight initialization
    attention: ATTENTIONS.field(PartConfig, default="mha")  # the blocks' attention part
    mlp: MLPS.field(PartConfig, default="swiglu")  # the blocks' feed-forward part
    norm: NORMS.field(PartConfig, default="rmsnorm")  # the norm part
    linear: LINEARS.field(PartConfig, default="dense")  # the blocks' projections (not the head)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset"):
            preset = MODEL_PRESETS.get(data["preset"])
            data = {**preset, **data}
        return data

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("head dimension d_model/n_heads must be even for rotary embeddings")
        for part in self.parts.values():
            part.check(self)
        return self

    @property
    def parts(self) -> dict[str, PartConfig]:
        """The block's parts by field name."""
        return {
            "attention": self.attention,
            "mlp": self.mlp,
            "norm": self.norm,
            "linear": self.linear,
        }

    @property
    def ffn_dim(self) -> int:
        return self.d_ff if self.d_ff is not None else self.mlp.default_width(self.d_model)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class TrainerConfig(BaseConfig):
    """How the run trains: steps, batches, intervals, precision, device, where it writes."""

    # optimizer steps; 0 trains nothing: the run is its model at initialization (checkpoint 0),
    # the "no pretraining" baseline an experiment evaluates like any other run
    max_steps: int = Field(default=200, ge=0)
    batch_size: int = Field(default=32, gt=0)  # global, in sequences, per optimizer step
    micro_batch_size: int | None = Field(default=None, gt=0)  # per process; None: no accumulation
    eval_interval: int = Field(default=50, gt=0)  # steps between validations (and the last)
    # validation windows per evaluation: eval_batches * batch_size, an equal share per domain
    eval_batches: int = Field(default=4, ge=0)
    # How val_loss weighs the data domains' validation losses (train/callbacks/validation.py):
    # mixture (each domain's share of the training mixture), tokens (its held-out tokens), uniform
    validation_weighting: Literal["mixture", "tokens", "uniform"] = "mixture"
    log_interval: int = Field(default=10, gt=0)  # steps between rows of metrics.jsonl
    checkpoint_interval: int = Field(default=100, gt=0)  # steps between checkpoints
    keep_checkpoints: int = Field(default=2, gt=0)  # the newest N complete checkpoints are kept
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, else fp32
    device: str = "auto"  # auto: CUDA when available, else CPU; or cpu, cuda, cuda:N
    compile: bool = False  # torch.compile the model
    # How several torchrun processes hold the model: ddp (a full replica on each, gradients
    # all-reduced) or fsdp (FSDP2: weights, gradients and optimizer state sharded over the ranks,
    # sharded checkpoints); one process trains the plain model either way (train/distributed.py)
    parallelism: Literal["ddp", "fsdp"] = "ddp"
    out_dir: str = "runs"  # run directories are written at out_dir/NAME
    progress: bool = True  # show a progress bar
    # A loss or gradient norm that is not finite: raise fails the run (TrainingDiverged); stop
    # ends it at that step as a finished run recorded as diverged (run_info.json), so an lr
    # sweep whose highest learning rates diverge still reaches its analysis.
    on_divergence: Literal["raise", "stop"] = "raise"
    # Extra callbacks by registered name, run after validation and before the metrics log.
    callbacks: list[CALLBACKS.type(CallbackConfig, default="stability")] = Field(
        default_factory=list
    )


class InitConfig(BaseConfig):
    """Start a run from another run's checkpoint instead of a random initialization.

    ``from_run``: the parent's run directory; ``step``: which complete checkpoint (default: its
    latest); ``optimizer``: also take the parent's optimizer state (moments), keeping this run's
    own hyperparameters. The child's schedule starts at its own step 0, so a continued-pretraining
    stage can warm up again. The run is keyed by the parent's config key and the step, not by the
    path (``train.run_dir.config_key``); ``train.init`` checks and loads it.
    """

    from_run: str
    step: int | None = Field(default=None, ge=0)
    optimizer: bool = False


class RunConfig(BaseConfig):
    """One pretraining run: everything that determines its result (plus where to write it)."""

    name: str = "run"  # the run directory's name (trainer.out_dir/NAME)
    seed: Seed = 0  # initialization and data order
    world: WORLDS.field(WorldConfig, default="bios")  # the synthetic world (corpus and tasks)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)  # trained on the corpus
    data: DataConfig = Field(default_factory=DataConfig)  # the corpus: world, sources or folder
    model: ModelConfig = Field(default_factory=ModelConfig)  # its shape and parts
    objective: OBJECTIVES.field(ObjectiveConfig, default="clm")  # how the model learns
    optimizer: OPTIMIZERS.field(OptimizerConfig, default="adamw")  # lr, decay, param groups
    schedule: SCHEDULES.field(ScheduleConfig, default="cosine")  # the learning-rate schedule
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)  # steps, batches, precision
    init: InitConfig | None = None  # None: a fresh (random) initialization

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        return check_folder_name(name, "the run directory (trainer.out_dir/NAME)")

    @model_validator(mode="after")
    def _sections_agree(self) -> RunConfig:
        self.schedule.check(self.trainer.max_steps)
        if self.trainer.max_steps == 0 and self.trainer.callbacks:  # no hook of theirs runs
            names = [callback.name for callback in self.trainer.callbacks]
            raise ValueError(
                f"trainer.max_steps=0 trains nothing, so trainer.callbacks {names} would never "
                "run; drop them or train at least one step"
            )
        for callback in self.trainer.callbacks:
            callback.check(self)
        self.objective.check(self)
        if self.data.seq_len > self.model.max_seq_len:
            raise ValueError(
                f"data.seq_len={self.data.seq_len} exceeds model.max_seq_len={self.model.max_seq_len}"
            )
        micro = self.trainer.micro_batch_size
        if micro is not None and self.trainer.batch_size % micro:
            raise ValueError(
                f"trainer.batch_size={self.trainer.batch_size} is not a multiple of "
                f"trainer.micro_batch_size={micro}"
            )
        return self
