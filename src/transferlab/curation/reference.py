"""The reference language model of the perplexity filter, trained here on a user-given corpus.

CCNet scores documents with KenLM models trained on Wikipedia, which this machine cannot
download; instead a tiny transformer (``transferlab.models``) with its own byte-level BPE
tokenizer is trained on the reference corpus by the training engine (clm on random windows). The result is
content-addressed under ``cache_root()/curation/reference/<key>``, the key hashing the config and
the corpus' documents, so a second filter with the same reference reuses the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, ValidationError, model_validator
from safetensors.torch import load_file, save_file

from transferlab.artifacts import cache_root, cached_dir, content_key
from transferlab.config.base import BaseConfig
from transferlab.config.schemas import ModelConfig, TokenizerConfig
from transferlab.curation.corpus import SourceList, corpus_digest
from transferlab.curation.documents import batched
from transferlab.data.sources import iter_texts
from transferlab.data.tokenizer import TextTokenizer, train_tokenizer
from transferlab.models import Transformer, build_model
from transferlab.objectives import ClmConfig
from transferlab.optim.adamw import AdamWConfig
from transferlab.optim.schedules import CosineConfig
from transferlab.train.batching import BatchPlan
from transferlab.train.distributed import DistContext
from transferlab.train.engine import Engine, LoopSettings

FORMAT_VERSION = 1
ENCODE_CHUNK = 256  # documents per encode_batch call


class ReferenceModelConfig(BaseConfig):
    """A tiny causal LM trained for ``steps`` steps of ``batch_size`` random windows of
    ``seq_len`` tokens of the ``sources`` (a byte-level BPE of ``vocab_size`` tokens)."""

    sources: SourceList  # the reference text (CCNet: Wikipedia); head is what resembles it
    vocab_size: int = Field(default=512, ge=260)  # 256 bytes + 4 special tokens at least
    d_model: int = Field(default=64, gt=0)  # the model's width
    n_layers: int = Field(default=2, gt=0)  # transformer blocks
    n_heads: int = Field(default=4, gt=0)  # attention heads (d_model must divide by it)
    seq_len: int = Field(default=64, gt=1)  # tokens per training window and per scored window
    steps: int = Field(default=300, gt=0)  # training steps
    batch_size: int = Field(default=16, gt=0)  # windows per training step
    lr: float = Field(default=3e-3, gt=0)  # AdamW's peak learning rate (cosine schedule)
    seed: int = 0  # initialization and the windows' offsets

    @model_validator(mode="after")
    def _shape_is_valid(self) -> ReferenceModelConfig:
        try:  # the model's own shape checks (d_model / n_heads), with their messages
            self.model_config_of(self.vocab_size)
        except ValidationError as exc:
            message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ValueError(message) from None
        return self

    def model_config_of(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            max_seq_len=self.seq_len,
        )


@dataclass
class ReferenceModel:
    """A trained reference model, its tokenizer, and the key it is stored under."""

    model: Transformer
    tokenizer: TextTokenizer
    seq_len: int
    key: str


def reference_key(cfg: ReferenceModelConfig) -> str:
    """Content key of the model ``cfg`` trains (reads the corpus once to hash it)."""
    return content_key(cfg.to_dict(), corpus_digest(cfg.sources), FORMAT_VERSION)


def load_reference_model(cfg: ReferenceModelConfig, key: str | None = None) -> ReferenceModel:
    """The model of ``cfg``: trained and stored on first use, loaded afterwards."""
    key = key or reference_key(cfg)
    root = cached_dir(
        cache_root() / "curation" / "reference" / key, lambda d: train_reference(cfg, d)
    )
    return _load(root, cfg.seq_len, key)


def train_reference(cfg: ReferenceModelConfig, out: Path) -> None:
    """Train the tokenizer and model of ``cfg`` and save them in ``out``."""
    tokenizer = train_tokenizer(
        TokenizerConfig(kind="bpe", vocab_size=cfg.vocab_size), iter_texts(cfg.sources)
    )
    tokens = _token_stream(cfg, tokenizer)
    torch.manual_seed(cfg.seed)
    model_cfg = cfg.model_config_of(tokenizer.vocab_size)
    model = build_model(model_cfg)
    losses = _fit(cfg, model, tokenizer, tokens)
    tokenizer.save(out / "tokenizer.json")
    save_file(model.state_dict(), out / "model.safetensors")
    info = {
        "model": model_cfg.to_dict(),
        "corpus_tokens": int(tokens.size),
        "first_loss": losses[0],
        "final_loss": float(np.mean(losses[-10:])),
    }
    (out / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True))


def _token_stream(cfg: ReferenceModelConfig, tokenizer: TextTokenizer) -> np.ndarray:
    """The corpus as one array of ``[bos] doc [eos]`` token runs (int32: half the memory)."""
    bos, eos = tokenizer.special.bos, tokenizer.special.eos
    pieces = [
        np.array([bos, *ids, eos], dtype=np.int32)
        for texts in batched(iter_texts(cfg.sources), ENCODE_CHUNK)
        for ids in tokenizer.encode_batch(texts)
    ]
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    if tokens.size < cfg.seq_len + 1:
        raise ValueError(
            f"the reference corpus has {tokens.size} tokens, fewer than seq_len + 1 = "
            f"{cfg.seq_len + 1}; give perplexity.reference more text or a smaller seq_len"
        )
    return tokens


class RandomWindows:
    """Batches of ``batch_size`` windows of ``seq_len + 1`` tokens at seeded random offsets of
    one token stream (the reference corpus is small: no packing into shards needed)."""

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        self.stream = torch.from_numpy(tokens).long()
        self.offsets = torch.arange(seq_len + 1)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def global_batch(self) -> torch.Tensor:
        high = self.stream.numel() - self.offsets.numel() + 1
        starts = torch.randint(0, high, (self.batch_size,), generator=self.generator)
        return self.stream[starts[:, None] + self.offsets]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])


def _fit(
    cfg: ReferenceModelConfig, model: Transformer, tokenizer: TextTokenizer, tokens: np.ndarray
) -> list[float]:
    """Causal-LM training on random windows on the engine (seeded); the loss of every step."""
    optimizer_cfg = AdamWConfig(lr=cfg.lr, weight_decay=0.0, grad_clip=1.0)
    engine = Engine(
        model,
        ClmConfig().build(tokenizer.special, tokenizer.vocab_size),
        RandomWindows(tokens, cfg.seq_len, cfg.batch_size, cfg.seed),
        optimizer_cfg.build(model),
        CosineConfig(warmup_steps=min(10, cfg.steps - 1)).build(cfg.steps),
        BatchPlan(cfg.batch_size, cfg.batch_size, 1, 1),
        LoopSettings(
            max_steps=cfg.steps,
            seed=cfg.seed,
            grad_clip=optimizer_cfg.grad_clip,
            precision="fp32",
            label="reference LM",
            tokens_per_step=cfg.batch_size * cfg.seq_len,
        ),
        DistContext(0, 1, 0, torch.device("cpu")),
    )
    losses = engine.run().losses
    model.eval()
    return losses


def _load(root: Path, seq_len: int, key: str) -> ReferenceModel:
    info = json.loads((root / "info.json").read_text())
    model = build_model(ModelConfig.model_validate(info["model"]))
    model.load_state_dict(load_file(root / "model.safetensors"))
    model.eval()
    return ReferenceModel(model, TextTokenizer.from_file(root / "tokenizer.json"), seq_len, key)
