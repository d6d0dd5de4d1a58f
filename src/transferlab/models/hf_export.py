"""Export a ``Transformer`` as a Hugging Face ``transformers`` causal LM plus its tokenizer.

Each part of the model's blocks maps its own weights to HF names and sets the config fields it
decides (``Part.hf_weights``, ``Part.hf_config``), or says why it has no HF counterpart; the
export is the union over the parts. The default parts follow HF Llama (rotate-half RoPE, fp32
RMSNorm, SwiGLU, no biases), so their export only renames weights and splits the two fused
projections. A model with QK-norm is exported as ``Qwen3ForCausalLM``, which is Llama plus a
per-head RMSNorm on q and k before RoPE.
Any transformers >= 4.51 (Qwen3) works; ``save_pretrained`` writes safetensors by default there.

The files written load under transformers 4.x and 5.x alike, whichever wrote them
(``_compatible_files``), and the tokenizer prepends ``<bos>`` by default, as every training
document and every scored context starts with it, so scores computed elsewhere with default
settings (lm-evaluation-harness, a plain ``tokenizer(text)``) equal ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from transferlab.artifacts import atomic_dir
from transferlab.config.schemas import ModelConfig
from transferlab.models.parts.base import prefixed, sub_state
from transferlab.models.transformer import Transformer

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>"}
MASK_TOKEN = "<mask>"
EXPORT_KIND = "hf-export"  # what the COMPLETE marker of an export names


def check_exportable(cfg: ModelConfig) -> None:
    """Raise ValueError naming the first part of ``cfg`` that has no Hugging Face counterpart."""
    for field, part in cfg.parts.items():
        reason = part.hf_unsupported(cfg)
        if reason is not None:
            raise ValueError(
                f"model.{field}={part.name!r} cannot be exported to Hugging Face: {reason}"
            )


def hf_config(cfg: ModelConfig, bos_id: int = 1, eos_id: int = 2, pad_id: int = 0) -> Any:
    """The ``LlamaConfig`` (``Qwen3Config`` when ``cfg.qk_norm``) of the same architecture."""
    if cfg.vocab_size is None:
        raise ValueError("model.vocab_size is not set; set it before exporting")
    check_exportable(cfg)
    fields = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layers,
        max_position_embeddings=cfg.max_seq_len,
        # transformers 5 moves this into ``rope_parameters``; both accept the keyword.
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    for part in cfg.parts.values():
        fields |= part.hf_config(cfg)
    if not cfg.qk_norm:
        from transformers import LlamaConfig

        return LlamaConfig(mlp_bias=False, **fields)
    try:
        from transformers import Qwen3Config
    except ImportError:
        raise ValueError(
            "qk_norm models cannot be exported as LlamaForCausalLM; they export as "
            "Qwen3ForCausalLM, which needs transformers >= 4.51"
        ) from None
    return Qwen3Config(use_sliding_window=False, sliding_window=None, **fields)


def hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights under HF Llama/Qwen3 names: the union of the parts' mappings."""
    cfg = model.config
    check_exportable(cfg)
    state = model.state_dict()
    weights = {"model.embed_tokens.weight": state["embed.weight"]}
    # (our module, its part, the HF module holding it), per layer
    layer_parts = [
        ("attn_norm", cfg.norm, "input_layernorm"),
        ("attn", cfg.attention, "self_attn"),
        ("mlp_norm", cfg.norm, "post_attention_layernorm"),
        ("mlp", cfg.mlp, "mlp"),
    ]
    for i in range(cfg.n_layers):
        for ours, part, theirs in layer_parts:
            part_state = sub_state(state, f"blocks.{i}.{ours}.")
            weights |= prefixed(f"model.layers.{i}.{theirs}.", part.hf_weights(cfg, part_state))
    final_norm = cfg.norm.hf_weights(cfg, sub_state(state, "final_norm."))
    weights |= prefixed("model.norm.", final_norm)
    weights["lm_head.weight"] = model.output_weight.detach()  # HF keeps the key even when tied
    return weights


def hf_tokenizer(tokenizer_file: Path, max_length: int) -> Any:
    """A ``PreTrainedTokenizerFast`` over our ``tokenizer.json`` with the special tokens named."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer_file = Path(tokenizer_file)
    if not tokenizer_file.is_file():
        raise ValueError(f"tokenizer file {str(tokenizer_file)!r} does not exist")
    raw = Tokenizer.from_file(str(tokenizer_file))
    special = {**SPECIAL_TOKENS, "mask_token": MASK_TOKEN}
    missing = [token for token in special.values() if raw.token_to_id(token) is None]
    if missing:
        raise ValueError(
            f"{tokenizer_file}: special tokens {missing} are missing from the vocabulary"
        )
    unk = json.loads(tokenizer_file.read_text())["model"].get("unk_token")
    if unk is not None:
        special["unk_token"] = unk
    bos = SPECIAL_TOKENS["bos_token"]
    raw.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A",
        pair=f"{bos} $A {bos} $B:1",
        special_tokens=[(bos, raw.token_to_id(bos))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        model_max_length=max_length,
        add_bos_token=True,
        add_eos_token=False,
        **special,
    )


def export_llama(model: Transformer, tokenizer_file: Path, out_dir: Path) -> Path:
    """Write ``model`` and its tokenizer to ``out_dir`` as a transformers checkpoint.

    ``out_dir`` gets ``config.json``, ``model.safetensors`` and the tokenizer files, written
    into a temporary directory that is renamed into place only when complete. The architecture
    is ``LlamaForCausalLM``, or ``Qwen3ForCausalLM`` for a model with QK-norm; a model with a
    part that has no Hugging Face counterpart fails first, naming it.
    """
    check_exportable(model.config)
    tokenizer = hf_tokenizer(tokenizer_file, model.config.max_seq_len)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model only "
            f"{model.config.vocab_size} embeddings; export with the tokenizer it was trained with"
        )
    ids = {key: tokenizer.convert_tokens_to_ids(tok) for key, tok in SPECIAL_TOKENS.items()}
    config = hf_config(model.config, ids["bos_token"], ids["eos_token"], ids["pad_token"])
    # transformers initializes the weights it is about to overwrite; keep the caller's RNG intact.
    with torch.random.fork_rng(devices=[]):
        hf_model = _model_class(model.config)(config)
    hf_model.load_state_dict(hf_state_dict(model), strict=True)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, kind=EXPORT_KIND) as tmp:
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _compatible_files(tmp, model.config)
    return out_dir


def _compatible_files(folder: Path, cfg: ModelConfig) -> None:
    """Make what this transformers version saved readable by the other major version too.

    transformers 5 names the tokenizer class ``TokenizersBackend`` (unknown to 4.x, which then
    refuses to load it) where 4.x wrote ``PreTrainedTokenizerFast`` (5.x's alias of the same
    class), and moves ``rope_theta`` into ``rope_parameters`` (4.x reads only the top-level
    field and would silently fall back to its default base of 10000) and ``torch_dtype`` to
    ``dtype``. Writing both spellings is read the same by either version.
    """
    tok_path = folder / "tokenizer_config.json"
    tok_cfg = json.loads(tok_path.read_text())
    # add_bos_token is what lm-evaluation-harness and PEFT users look for; tokenizer.json's
    # post-processor is what does it in either version.
    tok_cfg |= {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": True}
    tok_cfg["add_eos_token"] = False
    tok_path.write_text(json.dumps(tok_cfg, indent=2) + "\n")
    cfg_path = folder / "config.json"
    model_cfg = json.loads(cfg_path.read_text())
    model_cfg["rope_theta"] = cfg.rope_theta
    model_cfg["rope_scaling"] = None
    model_cfg.setdefault("torch_dtype", model_cfg.get("dtype", "float32"))
    cfg_path.write_text(json.dumps(model_cfg, indent=2, sort_keys=True) + "\n")


def _model_class(cfg: ModelConfig) -> type:
    if cfg.qk_norm:
        from transformers import Qwen3ForCausalLM

        return Qwen3ForCausalLM
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM
