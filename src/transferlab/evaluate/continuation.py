"""(context, continuation) text pairs as token ids, the way lm-evaluation-harness encodes them.

Trailing whitespace of the context moves to the front of the continuation (``"Q: x\\nA: "`` +
``"y"`` is scored as ``"Q: x\\nA:"`` + ``" y"``), so the boundary falls before a space, where
the tokenizers split. As lm-eval's ``TemplateLM._encode_pair`` does for a causal model, the
joined text is encoded once and the continuation is what follows the context's own tokens (so a
choice is scored as the joined text tokenizes); the context goes after ``<bos>``. Given a window,
a pair longer than it loses context tokens on the left, and the continuation is always scored
whole. Every task that scores a text continuation of a text
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
    tokenizer: TextTokenizer, context: str, continuation: str, window: int | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of ``(<bos> context, continuation)``; with a ``window``, the context cut on the
    left so that scoring the pair (``len(context) + len(continuation) - 1`` positions) fits it."""
    context, continuation = move_whitespace(context, continuation)
    context_ids = tokenizer.encode(context)
    continuation_ids = tokenizer.encode(context + continuation)[len(context_ids) :]
    if not continuation_ids:
        raise ValueError(
            f"continuation {continuation!r} encodes to no tokens; give a non-empty continuation"
        )
    context_ids = [tokenizer.special.bos, *context_ids]
    if window is None:
        return context_ids, continuation_ids
    room = window + 1 - len(continuation_ids)
    if room < 1:
        raise ValueError(
            f"a continuation of {len(continuation_ids)} tokens does not fit the model's window "
            f"of {window} tokens with any context; shorten the continuation"
        )
    return context_ids[-room:], continuation_ids
