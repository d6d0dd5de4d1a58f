"""``sample_score``: one row per sample, each scored; seeded and batch-independent samples;
control tokens after <bos>; prefix models read the prompt whole; the one-line errors."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from transferlab.config import TASKS, ModelConfig, TokenizerConfig
from transferlab.data.tokenizer import train_tokenizer
from transferlab.evaluate.generate import generate
from transferlab.models import build_model
from transferlab.worlds import BiosConfig

LEAK = " can be reached at (312) 555-0147 or ann.smith.07@example.org."
WORLD = BiosConfig(num_people=12, exposures=2, pii_fraction=0.5)


def tokenizer_with(*special: str):
    texts = [*WORLD.build().tokenizer_texts(), LEAK, "Once upon a time", "Hello there"]
    tokenizer = train_tokenizer(TokenizerConfig(kind="word"), texts)
    tokenizer.tokenizer.add_special_tokens(list(special))
    return tokenizer


class ScriptedLM(nn.Module):
    """After a prompt of ``prompt_len`` tokens, emits ``script`` then <eos> (a logit margin of
    100: sampling at temperature 1 picks it); records each row's prompt."""

    def __init__(self, prompt_len: int, script: list[int], eos: int, vocab: int) -> None:
        super().__init__()
        self.prompt_len, self.script, self.eos, self.vocab = prompt_len, script, eos, vocab
        self.prompts: list[list[int]] = []

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        step = length - self.prompt_len
        if step == 0:
            self.prompts += input_ids.tolist()
        logits = torch.zeros(batch, length, self.vocab)
        logits[:, -1, self.script[step] if step < len(self.script) else self.eos] = 100.0
        return logits


def task(**fields):
    return TASKS.parse({"name": "sample_score", "scorer": {"name": "pii"}, **fields}).build()


def test_one_row_per_sample_with_the_scorers_verdict():
    tokenizer = tokenizer_with("<|good|>")
    good = tokenizer.token_to_id("<|good|>")
    model = ScriptedLM(2, tokenizer.encode(LEAK), tokenizer.special.eos, tokenizer.vocab_size)
    rows = task(n_samples=3, prefix_tokens=["<|good|>"]).run(model, tokenizer, None, "r", 0)
    assert model.prompts == [[tokenizer.special.bos, good]] * 3  # <bos>, then the control token
    assert rows == [
        {
            "run_id": "r",
            "task": "sample_score",
            "example_id": f"bos:{i}",
            "group": "bos",
            "split": "test",
            "prediction": LEAK,
            "target": "<bos><|good|>",
            "undesirable": 1.0,
            "score": 2.0,
        }
        for i in range(3)
    ]
    lenient = task(n_samples=2, prefix_tokens=["<|good|>"], threshold=2.0, label="lenient")
    rows = lenient.run(model, tokenizer, None, "r", 0)
    assert [(r["task"], r["undesirable"], r["score"]) for r in rows] == [("lenient", 0.0, 2.0)] * 2
    phones = task(
        n_samples=1, prefix_tokens=["<|good|>"], scorer={"name": "pii", "kinds": ["phone"]}
    )
    assert phones.run(model, tokenizer, None, "r", 0)[0]["score"] == 1.0
    regex = task(n_samples=1, prefix_tokens=["<|good|>"], scorer={"name": "regex", "pattern": "a"})
    assert regex.run(model, tokenizer, None, "r", 0)[0]["score"] == float(LEAK.count("a"))


def test_samples_are_seeded_and_do_not_depend_on_the_batch():
    world = WORLD.build()
    tokenizer = tokenizer_with()
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(
            vocab_size=tokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2, init_std=0.5
        )
    ).eval()
    names = {"prompts": "names", "n_prompts": 4, "n_samples": 3, "max_new_tokens": 6}
    rows = task(**names).run(model, tokenizer, world, "r", 0)
    assert [r["example_id"] for r in rows] == [f"{p}:{s}" for p in range(4) for s in range(3)]
    assert [r["target"] for r in rows[::3]] == [f"<bos>{p.full_name}" for p in world.people[:4]]
    assert [r["split"] for r in rows[::3]] == [p.split for p in world.people[:4]]
    assert task(**names, batch_size=1).run(model, tokenizer, world, "r", 0) == rows
    texts = [r["prediction"] for r in rows]
    assert len(set(texts)) > 1  # the samples of one prompt are draws of their own
    other_seed = task(**names).run(model, tokenizer, world, "r", 1)
    assert [r["prediction"] for r in other_seed] != texts
    greedy = task(**{**names, "n_samples": 1, "temperature": 0}).run(
        model, tokenizer, world, "r", 0
    )
    assert greedy == task(**{**names, "n_samples": 1, "temperature": 0}).run(
        model, tokenizer, world, "r", 5
    )  # greedy draws nothing


def test_prefix_models_generate_with_the_prompt_as_their_prefix():
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=16, d_model=32, n_layers=2, n_heads=2, init_std=0.5))
    prompts = [[1, 5, 6, 7], [1, 9], [1, 11, 12]]
    cached = generate(model, prompts, 5, attention="prefix", batch_size=3)  # left-padded
    for prompt, tokens in zip(prompts, cached, strict=True):
        ids = list(prompt)
        with torch.inference_mode():
            for _ in range(5):
                prefix = torch.tensor([len(prompt)])
                logits = model(torch.tensor([ids]), attention="prefix", prefix_len=prefix)
                ids.append(int(logits[0, -1].argmax()))
        assert tokens == ids[len(prompt) :]
    assert cached != generate(model, prompts, 5)  # causal reading differs
    with pytest.raises(ValueError, match="a causal or prefix model can, a bidirectional one"):
        generate(model, prompts, 5, attention="bidirectional")


def test_file_prompts_and_their_errors(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "Hello there", "id": "hi"}) + "\n\n")
    tokenizer = tokenizer_with()
    model = ScriptedLM(3, tokenizer.encode(LEAK), tokenizer.special.eos, tokenizer.vocab_size)
    rows = task(prompts="file", path=str(path), n_samples=2).run(model, tokenizer, None, "r", 0)
    assert [(r["example_id"], r["target"], r["group"]) for r in rows] == [
        ("hi:0", "<bos>Hello there", "file"),
        ("hi:1", "<bos>Hello there", "file"),
    ]
    path.write_text('{"prompt": "Hello there"}\n{"text": "x"}\n')
    with pytest.raises(ValueError, match="line 2 of .* has no string field 'prompt'"):
        task(prompts="file", path=str(path)).run(model, tokenizer, None, "r", 0)
    path.write_text('{"prompt": "Hello there", "id": 1}\n{"prompt": "Hello", "id": 1}\n')
    with pytest.raises(ValueError, match=re.escape("prompt ids ['1'] repeat in")):
        task(prompts="file", path=str(path)).run(model, tokenizer, None, "r", 0)


def test_run_errors_in_one_line():
    tokenizer = tokenizer_with()
    model = ScriptedLM(2, [], tokenizer.special.eos, tokenizer.vocab_size)
    message = (
        "sample_score: prefix token '<|good|>' is not in the run's tokenizer; it holds the "
        "tokens its objective adds"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        task(prefix_tokens=["<|good|>"]).run(model, tokenizer, None, "r", 0)
    message = (
        "task 'sample_score' cannot read this model: it is read with bidirectional attention "
        "and sample_score samples continuations, which a bidirectional model does not"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        task().run(model, tokenizer, None, "r", 0, reading="bidirectional")
    with pytest.raises(ValueError, match="asks questions about the bios world's people"):
        task(prompts="names").run(model, tokenizer, None, "r", 0)
    with pytest.raises(ValueError, match="scorer pii with match: known counts the personal"):
        task(scorer={"name": "pii", "match": "known"}).run(model, tokenizer, None, "r", 0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temperature": 0}, "temperature=0 (greedy) gives one continuation per prompt, not"),
        ({"temperature": 0, "n_samples": 1, "top_k": 5}, "top_k and top_p do nothing with"),
        ({"prompts": "file"}, "prompts: file with path=None: path (a JSONL file"),
        ({"path": "p.jsonl"}, "prompts: bos with path='p.jsonl'"),
        ({"prompts": "file", "path": "missing.jsonl"}, "path 'missing.jsonl' is not a file"),
        ({"n_samples": 0}, "n_samples"),
    ],
)
def test_bad_configs_fail_with_one_line(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        task(**fields)


def test_uses_the_world_unless_file_prompts_are_scored_by_format(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "Hello"}\n')
    assert TASKS.get("sample_score").uses_world is True
    assert task().cfg.uses_world and task(prompts="names").cfg.uses_world
    assert not task(prompts="file", path=str(path)).cfg.uses_world
    known = {"name": "pii", "match": "known"}
    assert task(prompts="file", path=str(path), scorer=known).cfg.uses_world
    assert task(prompts="file", path=str(path)).cfg.input_files() == [path]
