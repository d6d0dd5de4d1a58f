"""Export a ``Transformer`` as a Hugging Face ``transformers`` causal LM plus its tokenizer.

Our layout follows HF Llama (rotate-half RoPE, fp32 RMSNorm, SwiGLU, no biases), so the export only
renames weights and splits the two fused projections. A model with QK-norm is exported as
``Qwen3ForCausalLM``, which is Llama plus a per-head RMSNorm on q and k before RoPE.
Any transformers >= 4.51 (Qwen3) works; ``save_pretrained`` writes safetensors by default there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from transferlab.artifacts import atomic_dir
from transferlab.config.schemas import ModelConfig
from transferlab.models.transformer import Transformer

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>"}
MASK_TOKEN = "<mask>"


def hf_config(cfg: ModelConfig, bos_id: int = 1, eos_id: int = 2, pad_id: int = 0) -> Any:
    """The ``LlamaConfig`` (``Qwen3Config`` when ``cfg.qk_norm``) of the same architecture."""
    if cfg.vocab_size is None:
        raise ValueError("model.vocab_size is not set; set it before exporting")
    fields = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn_dim,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=cfg.norm_eps,
        # transformers 5 moves this into ``rope_parameters``; both accept the keyword.
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        hidden_act="silu",
        attention_bias=False,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
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
    """Our weights under HF Llama/Qwen3 names, fused projections split into their parts."""
    cfg = model.config
    weights = {"model.embed_tokens.weight": model.embed.weight}
    for i, block in enumerate(model.blocks):
        prefix = f"model.layers.{i}"
        q, k, v = block.attn.qkv.weight.chunk(3, dim=0)
        gate, up = block.mlp.gate_up.weight.chunk(2, dim=0)
        weights |= {
            f"{prefix}.input_layernorm.weight": block.attn_norm.weight,
            f"{prefix}.self_attn.q_proj.weight": q,
            f"{prefix}.self_attn.k_proj.weight": k,
            f"{prefix}.self_attn.v_proj.weight": v,
            f"{prefix}.self_attn.o_proj.weight": block.attn.out.weight,
            f"{prefix}.post_attention_layernorm.weight": block.mlp_norm.weight,
            f"{prefix}.mlp.gate_proj.weight": gate,
            f"{prefix}.mlp.up_proj.weight": up,
            f"{prefix}.mlp.down_proj.weight": block.mlp.down.weight,
        }
        if cfg.qk_norm:
            weights[f"{prefix}.self_attn.q_norm.weight"] = block.attn.q_norm.weight
            weights[f"{prefix}.self_attn.k_norm.weight"] = block.attn.k_norm.weight
    weights["model.norm.weight"] = model.final_norm.weight
    weights["lm_head.weight"] = model.output_weight  # HF keeps the key even when tied
    return {name: tensor.detach() for name, tensor in weights.items()}


def hf_tokenizer(tokenizer_file: Path, max_length: int) -> Any:
    """A ``PreTrainedTokenizerFast`` over our ``tokenizer.json`` with the special tokens named."""
    from tokenizers import Tokenizer
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
    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file), model_max_length=max_length, **special
    )


def export_llama(model: Transformer, tokenizer_file: Path, out_dir: Path) -> Path:
    """Write ``model`` and its tokenizer to ``out_dir`` as a transformers checkpoint.

    ``out_dir`` gets ``config.json``, ``model.safetensors`` and the tokenizer files, written
    into a temporary directory that is renamed into place only when complete. The architecture
    is ``LlamaForCausalLM``, or ``Qwen3ForCausalLM`` for a model with QK-norm.
    """
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
    with atomic_dir(out_dir) as tmp:
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def _model_class(cfg: ModelConfig) -> type:
    if cfg.qk_norm:
        from transformers import Qwen3ForCausalLM

        return Qwen3ForCausalLM
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM
