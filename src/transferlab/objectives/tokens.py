"""Tokens an objective adds to the vocabulary: sentinels, mode tokens, control tokens.

Objectives such as span corruption (sentinels ``<extra_id_0>`` ...), UL2 (a mode token per
denoiser) and conditional training (``<|good|>``, ``<|bad|>``) need ids the tokenizer of the data
does not have. They are appended after the tokenizer's vocabulary, in the order
``ObjectiveConfig.added_tokens()`` lists them: token ``i`` gets id ``base_vocab + i``. The data,
its tokenizer and its cache stay the same for every objective (so variants that differ only in
the objective read the same token ids); the model's embedding grows by the added tokens, and the
run's own ``tokenizer.json`` carries them as special tokens (``tokenizers`` assigns the next free
ids, which are the same), so decoding, generation prompts and HF export see them by name.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from transferlab.config.schemas import ObjectiveConfig


def added_token_ids(objective: ObjectiveConfig, base_vocab: int) -> dict[str, int]:
    """The id of each token ``objective`` adds after a tokenizer of ``base_vocab`` ids."""
    return {token: base_vocab + i for i, token in enumerate(objective.added_tokens())}


def model_vocab(objective: ObjectiveConfig, base_vocab: int) -> int:
    """The embedding rows a model trained with ``objective`` needs: the tokenizer's plus the
    objective's added tokens."""
    return base_vocab + len(objective.added_tokens())


def run_tokenizer_json(data_tokenizer: Path, objective: ObjectiveConfig) -> bytes:
    """The bytes of a run's ``tokenizer.json``: the data's tokenizer, byte for byte when the
    objective adds nothing, else with the objective's tokens added as special tokens."""
    raw = Path(data_tokenizer).read_bytes()
    tokens = objective.added_tokens()
    if not tokens:
        return raw
    tokenizer = Tokenizer.from_str(raw.decode())
    base = tokenizer.get_vocab_size(with_added_tokens=True)
    clash = [token for token in tokens if tokenizer.token_to_id(token) is not None]
    if clash:
        raise ValueError(
            f"the objective adds {clash[0]!r}, which the tokenizer already has; "
            "train the tokenizer without it"
        )
    tokenizer.add_special_tokens(list(tokens))
    ids = added_token_ids(objective, base)
    if any(tokenizer.token_to_id(token) != i for token, i in ids.items()):  # guards the contract
        raise RuntimeError("tokenizers assigned added tokens other ids than base_vocab + i")
    return tokenizer.to_str().encode()
