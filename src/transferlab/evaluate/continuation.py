"""(context, continuation) text pairs as token ids, the way lm-evaluation-harness encodes them.

Trailing whitespace of the context moves to the front of the continuation (``"Q: x\\nA: "`` +
``"y"`` is scored as ``"Q: x\\nA:"`` + ``" y"``), so the boundary falls before a space, where
the tokenizers split. Context and continuation are encoded separately, the context after
``<bos>``; a pair longer than the model's window loses context tokens on the left, and the
continuation is always scored whole. Every task that scores a text continuation of a text
context uses ``encode_pair``, so their scores agree with each other and with lm-eval's.
"""

from __future__ import annotations

from transferlab.data.tokenizer import TextTokenizer


def move_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """``(context, continuation)`` with the context's trailing whitespace moved to the
    continuation."""
    kept = context.rstrip()
    return kept, context[len(kept) :] + continuation


def encode_pair(
    tokenizer: TextTokenizer, context: str, continuation: str, window: int
) -> tuple[list[int], list[int]]:
    """Token ids of ``(<bos> context, continuation)``, the context cut on the left so that
    scoring the pair (``len(context) + len(continuation) - 1`` positions) fits ``window``."""
    context, continuation = move_whitespace(context, continuation)
    continuation_ids = tokenizer.encode(continuation)
    if not continuation_ids:
        raise ValueError(
            f"continuation {continuation!r} encodes to no tokens; give a non-empty continuation"
        )
    room = window + 1 - len(continuation_ids)
    if room < 1:
        raise ValueError(
            f"a continuation of {len(continuation_ids)} tokens does not fit the model's window "
            f"of {window} tokens with any context; shorten the continuation"
        )
    context_ids = [tokenizer.special.bos, *tokenizer.encode(context)]
    return context_ids[-room:], continuation_ids
