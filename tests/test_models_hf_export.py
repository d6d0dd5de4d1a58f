"""Hugging Face export: transformers loads the checkpoint and reproduces our logits and ids."""

from __future__ import annotations

import json

import pytest
import torch

from transferlab.config import ModelConfig
from transferlab.models import build_model

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

from transferlab.models.hf_export import export_llama  # noqa: E402

WORDS = ["<pad>", "<bos>", "<eos>", "<mask>", "<unk>", "the", "cat", "sat", "on", "a", "mat", "."]
VOCAB = 24  # larger than the tokenizer, as a model's vocabulary may be


@pytest.fixture
def tokenizer_file(tmp_path):
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))


def make_model(**fields):
    cfg = {"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, "rope_theta": 500.0}
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**cfg, **fields}))
    with torch.no_grad():  # norm scales away from 1, so a missed norm weight shows up
        for name, param in model.named_parameters():
            # sparse_low_rank's B starts at 0: moved too, so the export must carry B A
            if "norm" in name or name.endswith(".b"):
                param.add_(0.5 * torch.randn_like(param))
    return model


@pytest.mark.parametrize(
    ("fields", "architecture"),
    [
        ({}, "LlamaForCausalLM"),
        ({"tie_embeddings": False, "d_ff": 48}, "LlamaForCausalLM"),
        ({"qk_norm": True}, "Qwen3ForCausalLM"),
        ({"linear": {"name": "sparse_low_rank", "rank": 4}}, "LlamaForCausalLM"),
    ],
)
def test_transformers_reproduces_our_logits(tmp_path, tokenizer_file, fields, architecture):
    model = make_model(**fields)
    out = export_llama(model, tokenizer_file, tmp_path / "hf")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [architecture]
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (1, 2, 0)
    assert config["tie_word_embeddings"] == model.config.tie_embeddings

    ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(ids)
        for impl in ("eager", "sdpa"):
            hf = transformers.AutoModelForCausalLM.from_pretrained(
                out, dtype=torch.float32, attn_implementation=impl
            )
            assert type(hf).__name__ == architecture
            theirs = hf(ids).logits
            assert (theirs - ours).abs().max().item() <= 1e-4, impl


def test_tokenizer_round_trips_through_transformers(tmp_path, tokenizer_file):
    out = export_llama(make_model(), tokenizer_file, tmp_path / "hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "the cat sat on a mat . the dog"
    expected = Tokenizer.from_file(str(tokenizer_file)).encode(text).ids
    assert expected[-1] == WORDS.index("<unk>")
    # <bos> first by default, as every document was in training; nothing appended
    assert hf_tok(text)["input_ids"] == [WORDS.index("<bos>"), *expected]
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == expected
    named = (hf_tok.pad_token_id, hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.mask_token_id)
    assert named == (0, 1, 2, 3)
    assert hf_tok.unk_token == "<unk>"


def test_export_replaces_atomically_and_keeps_the_rng(tmp_path, tokenizer_file):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    model = make_model()
    state = torch.get_rng_state()
    export_llama(model, tokenizer_file, out)
    # transformers initializes weights before we overwrite them; that must not draw from our RNG.
    assert torch.equal(torch.get_rng_state(), state)
    assert not (out / "stale.txt").exists()
    assert (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_rejects_a_mismatched_tokenizer(tmp_path, tokenizer_file):
    with pytest.raises(ValueError, match="the tokenizer has 12 tokens but the model only 8"):
        export_llama(make_model(vocab_size=8), tokenizer_file, tmp_path / "hf")
    bare = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    bare.save(str(tmp_path / "bare.json"))
    with pytest.raises(ValueError, match=r"special tokens \['<pad>', '<bos>', '<eos>', '<mask>'\]"):
        export_llama(make_model(), tmp_path / "bare.json", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_export_files_carry_the_fields_transformers_4_reads(tmp_path, tokenizer_file):
    out = export_llama(make_model(), tokenizer_file, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    # 4.x reads only the top-level base; without it RoPE silently uses 10000
    assert config["rope_theta"] == 500.0
    assert config["torch_dtype"] == "float32"
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    # "TokenizersBackend" (what transformers 5 writes) is a class 4.x does not have
    assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (tok_config["add_bos_token"], tok_config["add_eos_token"]) == (True, False)


def test_scores_with_default_tokenization_equal_ours(tmp_path, tokenizer_file):
    """What lm-evaluation-harness does with default settings: encode context and
    context + continuation with the tokenizer's defaults, sum the continuation's log-probs."""
    from transferlab.data.tokenizer import TextTokenizer
    from transferlab.evaluate.score import score_choices

    model = make_model()
    out = export_llama(model, tokenizer_file, tmp_path / "hf")
    ours_tok = TextTokenizer.from_file(tokenizer_file)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    context, choices = "the cat sat on", [" a mat", " the cat .", " mat"]
    bos = ours_tok.special.bos
    ours = score_choices(
        model, [([bos, *ours_tok.encode(context)], [ours_tok.encode(c) for c in choices])]
    )
    theirs = []
    with torch.no_grad():
        for choice in choices:
            n_context = len(hf_tok(context)["input_ids"])
            ids = torch.tensor([hf_tok(context + choice)["input_ids"]])
            logprobs = hf(ids).logits.log_softmax(-1)[0, :-1]
            targets = ids[0, 1:]
            picked = logprobs.gather(1, targets[:, None])[:, 0]
            theirs.append(picked[n_context - 1 :].sum().item())
    assert theirs == pytest.approx(ours[0], abs=1e-4)


def test_peft_lora_trains_and_reloads_on_the_export(tmp_path, tokenizer_file):
    peft = pytest.importorskip("peft")
    model = make_model()
    out = export_llama(model, tokenizer_file, tmp_path / "hf")
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM")
    base = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    tuned = peft.get_peft_model(base, lora)
    ids = torch.randint(5, 12, (2, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(ids)
        # LoRA starts as the identity: the wrapped export is still our model
        assert (tuned(ids).logits - ours).abs().max().item() <= 1e-4
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    # one A and one B per target module per layer, nothing of the base model
    assert len(trainable) == 2 * len(targets) * model.config.n_layers
    assert all("lora_" in n for n in trainable)
    opt = torch.optim.SGD([p for p in tuned.parameters() if p.requires_grad], lr=0.5)
    tuned(ids, labels=ids).loss.backward()
    opt.step()
    with torch.no_grad():
        after = tuned(ids).logits
    assert (after - ours).abs().max().item() > 1e-3
    tuned.save_pretrained(tmp_path / "adapter")
    fresh = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    reloaded = peft.PeftModel.from_pretrained(fresh, tmp_path / "adapter")
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, after, atol=1e-6)
