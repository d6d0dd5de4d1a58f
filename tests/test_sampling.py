"""Generation: greedy and sampled, with and without the key/value cache, seeded per prompt."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from transferlab.config import ModelConfig
from transferlab.evaluate.generate import generate
from transferlab.evaluate.sampling import Sampling
from transferlab.models import build_model
from transferlab.models.kv_cache import KVCache

VOCAB = 24
EOS = 2
PROMPTS = [[1, 5], [1, 6, 7, 8], [1, 9], [1, 10, 11], [1, 12, 13, 14, 15, 16], [1, 5]]


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=2, init_std=0.5)
    return build_model(cfg).eval()


def argmax_loop(model: nn.Module, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Greedy by hand: the whole sequence through the model for every token."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([ids]))[0, -1].argmax())
            if token == EOS:
                break
            ids.append(token)
    return ids[len(prompt) :]


def test_cached_forward_of_a_padded_batch_equals_the_full_forward(model: nn.Module) -> None:
    prompts = [[1, 5, 6, 7], [1, 9]]
    ids = torch.tensor([[1, 5, 6, 7], [0, 0, 1, 9]])
    valid = ids != 0
    cache = KVCache()
    with torch.no_grad():
        first = model(ids, cache=cache, valid=valid)[:, -1]
        second = model(torch.tensor([[3], [4]]), cache=cache)[:, -1]
        for row, (prompt, nxt) in enumerate(zip(prompts, (3, 4), strict=True)):
            full = model(torch.tensor([prompt + [nxt]]))[0]
            torch.testing.assert_close(first[row], full[-2], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(second[row], full[-1], atol=1e-5, rtol=1e-5)
    assert cache.length == 5


def test_greedy_is_the_argmax_loop_with_and_without_cache(model: nn.Module) -> None:
    expected = [argmax_loop(model, p, 8) for p in PROMPTS]
    assert any(len(tokens) == 8 for tokens in expected)  # some rows use the whole budget
    for use_cache in (True, False):
        got = generate(model, PROMPTS, 8, eos_id=EOS, batch_size=4, use_cache=use_cache)
        assert got == expected


@pytest.mark.parametrize(
    "settings", [{"temperature": 1.0}, {"temperature": 1.5, "top_k": 5}, {"top_p": 0.9}]
)
def test_sampled_with_cache_equals_without(model: nn.Module, settings: dict) -> None:
    settings = {"temperature": 1.0} | settings
    runs = [
        generate(model, PROMPTS, 10, eos_id=EOS, seed=3, use_cache=c, **settings)
        for c in (True, False)
    ]
    assert runs[0] == runs[1]


def test_samples_depend_on_the_seed_and_prompt_not_on_the_batch(model: nn.Module) -> None:
    def run(prompts: list[list[int]], seed: int = 7, batch_size: int = 64) -> list[list[int]]:
        return generate(model, prompts, 12, temperature=2.0, seed=seed, batch_size=batch_size)

    base = run(PROMPTS)
    assert run(PROMPTS) == base
    assert run(PROMPTS, batch_size=2) == base
    distinct = PROMPTS[:-1]
    assert run(distinct[::-1])[::-1] == base[:-1]
    assert [run([p])[0] for p in distinct] == base[:-1]
    assert run(PROMPTS, seed=8) != base
    # A repeated prompt draws its own samples; among equal prompts the k-th gets the k-th draws.
    assert base[0] != base[-1]
    assert run([PROMPTS[-1], [1, 7]]) == [base[0], run([[1, 7]])[0]]


def test_top_k_one_and_tiny_top_p_are_greedy(model: nn.Module) -> None:
    greedy = generate(model, PROMPTS, 8, eos_id=EOS)
    assert generate(model, PROMPTS, 8, eos_id=EOS, temperature=1.0, top_k=1, seed=1) == greedy
    assert generate(model, PROMPTS, 8, eos_id=EOS, temperature=1.0, top_p=1e-6, seed=1) == greedy


LOGITS = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -1.0])


class FixedLogits(nn.Module):
    """Logits ``LOGITS`` at every position, whatever the input."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return LOGITS.expand(*input_ids.shape, len(LOGITS))


def expected_distribution(temperature: float, top_k: int | None, top_p: float | None) -> list:
    """softmax(LOGITS / T) over the top_k, then the nucleus, worked out without torch: LOGITS
    are sorted, so the top k are the first k and the nucleus is a prefix."""
    weights = [math.exp(x / temperature) for x in LOGITS.tolist()[: top_k or len(LOGITS)]]
    probs = [w / sum(weights) for w in weights]
    if top_p is not None:
        kept = next(i + 1 for i in range(len(probs)) if sum(probs[: i + 1]) >= top_p)
        probs = [p / sum(probs[:kept]) for p in probs[:kept]]
    return probs + [0.0] * (len(LOGITS) - len(probs))


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"), [(0.7, None, None), (1.5, 3, None), (1.0, None, 0.8)]
)
def test_sample_frequencies_follow_the_restricted_softmax(
    temperature: float, top_k: int | None, top_p: float | None
) -> None:
    n = 4000
    draws = generate(
        FixedLogits(), [[1]] * n, 1, temperature=temperature, top_k=top_k, top_p=top_p, seed=0
    )
    counts = torch.bincount(torch.tensor([d[0] for d in draws]), minlength=len(LOGITS))
    for token, p in enumerate(expected_distribution(temperature, top_k, top_p)):
        if p == 0:
            assert counts[token] == 0, f"token {token} is outside top_k/top_p"
        else:
            # 4.5 binomial standard deviations: a false failure in about 1 of 150,000 checks.
            assert abs(counts[token] / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n), token


def test_nucleus_keeps_the_tokens_until_top_p_is_reached() -> None:
    probs = Sampling(1.0, top_p=0.8).probabilities(LOGITS[None])[0]
    expected = expected_distribution(1.0, None, 0.8)
    # softmax(LOGITS) = 0.420, 0.255, 0.154, 0.094, ...: the first three reach 0.829 >= 0.8.
    assert (probs > 0).tolist() == [p > 0 for p in expected] == [True] * 3 + [False] * 3
    torch.testing.assert_close(probs, torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"temperature": -1.0}, r"^temperature=-1.0 must be finite and >= 0 \(0 is greedy\)$"),
        ({"temperature": math.nan}, r"^temperature=nan must be finite"),
        ({"temperature": 1.0, "top_k": 0}, r"^top_k=0 must be at least 1, or None for no limit$"),
        ({"temperature": 1.0, "top_p": 0.0}, r"^top_p=0.0 must be in \(0, 1\]"),
        ({"temperature": 1.0, "top_p": 1.5}, r"^top_p=1.5 must be in \(0, 1\]"),
        ({"top_k": 5}, r"^top_k and top_p do nothing with temperature=0 \(greedy\); set"),
        ({"max_new_tokens": 0}, r"^max_new_tokens=0 and batch_size=64 must be at least 1$"),
        ({"use_cache": True}, r"^use_cache=True needs a transferlab Transformer, not Fixed"),
    ],
)
def test_bad_arguments_are_one_line_errors(settings: dict, message: str) -> None:
    settings = {"max_new_tokens": 2} | settings
    with pytest.raises(ValueError, match=message):
        generate(FixedLogits(), [[1]], **settings)


def test_bad_cache_use_is_refused(model: nn.Module) -> None:
    ids = torch.tensor([[1, 5]])
    with pytest.raises(ValueError, match="^valid .* is read only with a cache$"):
        model(ids, valid=ids > 0)
    with pytest.raises(ValueError, match='needs attention="causal" or "prefix", not .bidir'):
        model(ids, attention="bidirectional", cache=KVCache())
    cache = KVCache()
    model(ids, cache=cache)
    with pytest.raises(ValueError, match="^a prefix is the first tokens a cache takes"):
        model(ids, attention="prefix", cache=cache)
    cache = KVCache()
    model(torch.ones(1, model.config.max_seq_len - 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="^input length .* exceeds model.max_seq_len"):
        model(torch.ones(1, 2, dtype=torch.long), cache=cache)
    cache.advance(torch.ones(1, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="^0 of 2 attention layers used the key/value cache;"):
        cache.check_updated(2)
