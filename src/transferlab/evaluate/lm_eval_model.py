"""A transferlab model as an lm-evaluation-harness ``LM``.

lm-eval builds its tasks' requests (prompts, few-shot contexts, choices, documents) and this
class answers them with the run's own tokenizer and code, so no HF export or hub access is
needed and the model is read as its objective trained it (``Subject.reader``):

- ``loglikelihood``: each ``(context, continuation)`` is encoded by ``continuation.encode_pair``
  and scored by ``Reader.loglikelihoods`` (causal or prefix attention), which also says whether
  the continuation is the greedy one.
- ``loglikelihood_rolling``: a document scored after ``<bos>`` in lm-eval's disjoint windows of
  the model's length (one window when it fits), each window's log-likelihood summed: the
  scoring of ``text_likelihood`` (``likelihood.text_logprobs``).
- ``generate_until``: greedy generation (``generate.greedy_generate``) from ``<bos> context``,
  cut at the first stop string; a causal reading only, and greedy only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lm_eval.api.model import LM

from transferlab.evaluate.base import Subject
from transferlab.evaluate.continuation import encode_pair
from transferlab.evaluate.generate import greedy_generate
from transferlab.evaluate.likelihood import text_logprobs
from transferlab.evaluate.qa import check_known
from transferlab.evaluate.score import Request


class TransferlabLM(LM):
    """Answers lm-eval's requests for ``subject``: inputs of at most ``window`` tokens, at most
    ``max_gen_toks`` new tokens per generation (a task asking for more gets that many)."""

    def __init__(self, subject: Subject, window: int, batch_size: int, max_gen_toks: int) -> None:
        super().__init__()
        self.subject = subject
        self.window = window
        self.batch_size = batch_size
        self.max_gen_toks = max_gen_toks

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple]:
        tokenizer = self.subject.tokenizer
        pairs = [encode_pair(tokenizer, *request.args[:2], self.window) for request in requests]
        for (_, continuation), request in zip(pairs, requests, strict=True):
            check_known(tokenizer, continuation, "lm_eval", f"continuation {request.args[1]!r}")
        scored = self._score([(context, [continuation]) for context, continuation in pairs])
        return [(choice.logprob, choice.greedy) for (choice,) in scored]

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list:
        subject, tokenizer = self.subject, self.subject.tokenizer
        documents = []
        for index, request in enumerate(requests):
            ids = tokenizer.encode(request.args[0])
            check_known(tokenizer, ids, "lm_eval", f"document {index}")
            documents.append(ids)
        # likelihood.rolling_windows cuts exactly lm-eval's disjoint rolling windows.
        return text_logprobs(
            subject.reader,
            subject.model,
            documents,
            tokenizer.special,
            self.window,
            self.batch_size,
        )

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        if self.subject.reader.attention != "causal":
            raise ValueError(
                f"lm_eval: generation reads the model causally, but it was trained with "
                f"{self.subject.reader.attention} attention; use log-likelihood tasks "
                "(multiple_choice, loglikelihood, loglikelihood_rolling) for it"
            )
        by_budget: dict[int, list[int]] = defaultdict(list)  # max new tokens -> requests
        stops = []
        for index, request in enumerate(requests):
            budget, until = self._generation_settings(request.args[1])
            by_budget[budget].append(index)
            stops.append(until)
        texts = [""] * len(requests)
        for budget, indices in by_budget.items():
            prompts = [self._prompt(requests[i].args[0], budget) for i in indices]
            outputs = greedy_generate(
                self.subject.model,
                prompts,
                self.subject.tokenizer.special.eos,
                budget,
                self.batch_size,
            )
            for i, ids in zip(indices, outputs, strict=True):
                texts[i] = cut_at_stops(self.subject.tokenizer.decode(ids), stops[i])
        return texts

    def _score(self, requests: list[Request]) -> list[list[Any]]:
        subject = self.subject
        return subject.reader.loglikelihoods(
            subject.model, requests, subject.tokenizer.special, self.batch_size
        )

    def _generation_settings(self, gen_kwargs: dict[str, Any]) -> tuple[int, list[str]]:
        """(new-token budget, stop strings) of one request; sampling is refused."""
        if gen_kwargs.get("do_sample") and gen_kwargs.get("temperature", 1.0) > 0:
            raise ValueError(
                "lm_eval: the task asks to sample (do_sample: true) but transferlab generates "
                "greedily; set do_sample: false in the task's generation_kwargs"
            )
        until = gen_kwargs.get("until") or []
        asked = gen_kwargs.get("max_gen_toks", self.max_gen_toks)
        budget = min(asked, self.max_gen_toks, self.window - 1)
        return budget, [until] if isinstance(until, str) else list(until)

    def _prompt(self, context: str, budget: int) -> list[int]:
        """``<bos> context``, cut on the left to leave ``budget`` positions of the window."""
        tokenizer = self.subject.tokenizer
        return [tokenizer.special.bos, *tokenizer.encode(context)][-(self.window - budget) :]


def cut_at_stops(text: str, stops: list[str]) -> str:
    """``text`` up to the first occurrence of any stop string."""
    cuts = [text.find(stop) for stop in stops if stop and stop in text]
    return text[: min(cuts)] if cuts else text
