"""Tokenizers, tokenized shards in the datatrove layout, deterministic loaders, the data stage."""

from transferlab.data.loader import PackedLoader, document_windows, eval_batches
from transferlab.data.mixture_warnings import DataWarning
from transferlab.data.prepare import (
    PreparedData,
    data_key,
    prepare_data,
    split_groups,
    validation_domains,
    validation_floor,
)
from transferlab.data.shards import TokenizedFolder, token_size_for, write_tokenized
from transferlab.data.tokenizer import SpecialTokenIds, TextTokenizer, train_tokenizer

__all__ = [
    "DataWarning",
    "PackedLoader",
    "PreparedData",
    "SpecialTokenIds",
    "TextTokenizer",
    "TokenizedFolder",
    "data_key",
    "document_windows",
    "eval_batches",
    "prepare_data",
    "split_groups",
    "validation_domains",
    "validation_floor",
    "token_size_for",
    "train_tokenizer",
    "write_tokenized",
]
