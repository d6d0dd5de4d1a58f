"""A key/value cache: decoding one token per forward without recomputing the sequence before it.

Generation hands ``Transformer.forward`` a ``KVCache`` (training never does). The model asks the
cache for the new tokens' rotary positions and attention mask (``advance``); each attention
module hands it the new tokens' keys and values and attends over everything stored
(``update``). ``valid`` marks padding (False), so rows of different lengths share a batch: a
token's position counts only the valid tokens before it, and no query sees a padding key.
"""

from __future__ import annotations

import torch
from torch import nn


class KVCache:
    def __init__(self) -> None:
        self._layers: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}  # [B, H, L, D]
        self.valid: torch.Tensor | None = None  # [B, L] bool over every token seen so far
        self._updated = 0  # attention modules that stored keys in the current forward

    @property
    def length(self) -> int:
        """Tokens per row seen so far, padding included."""
        return 0 if self.valid is None else self.valid.shape[1]

    def advance(
        self, valid: torch.Tensor, prefix: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Take the next tokens' validity [B, L_new]; return their rotary positions [B, L_new]
        and the boolean attention mask [B, 1, L_new, L_total] (True: may attend). ``prefix``
        (the first forward only): those tokens see each other whole, as a prefix LM reads its
        prefix; every later token is causal, and sees them all."""
        old = self.length
        if prefix and old:
            raise ValueError("a prefix is the first tokens a cache takes; later ones are causal")
        self.valid = valid if self.valid is None else torch.cat((self.valid, valid), dim=1)
        self._updated = 0
        positions = (self.valid.long().cumsum(1) - 1).clamp(min=0)[:, old:]
        keys = torch.arange(self.length, device=valid.device)
        queries = keys[old:, None]
        visible = keys[None, :] <= queries
        if prefix:
            visible = torch.ones_like(visible)
        mask = visible[None] & self.valid[:, None, :]
        # A padding query sees only itself: with no key at all its softmax would be NaN, and
        # NaN values stay NaN even under a zero attention weight for the queries after it.
        mask = mask | (keys[None, :] == queries)[None]
        return positions, mask[:, None]

    def update(
        self, module: nn.Module, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``module``'s keys and values of the new tokens [B, H, L_new, D]; return those of
        every token so far [B, H, L_total, D]."""
        if module in self._layers:
            old_k, old_v = self._layers[module]
            k, v = torch.cat((old_k, k), dim=2), torch.cat((old_v, v), dim=2)
        self._layers[module] = (k, v)
        self._updated += 1
        return k, v

    def check_updated(self, n_layers: int) -> None:
        """Raise unless all ``n_layers`` attention modules used the cache in this forward."""
        if self._updated != n_layers:
            raise ValueError(
                f"{self._updated} of {n_layers} attention layers used the key/value cache; "
                "the model's attention part does not support one: generate with use_cache=False"
            )

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` (indices), e.g. when others finished."""
        self._layers = {m: (k[rows], v[rows]) for m, (k, v) in self._layers.items()}
        if self.valid is not None:
            self.valid = self.valid[rows]
