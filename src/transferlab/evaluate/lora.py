"""LoRA adapters on our transformer through ``peft``.

``peft`` wraps any ``nn.Module`` whose target layers are ``nn.Linear``; in our transformer those
are the fused attention projection ``attn.qkv``, the attention output ``attn.out`` and the MLP's
fused ``mlp.gate_up`` and ``mlp.down`` (matched by the last part of the module name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from peft import PeftModel

LORA_TARGETS = ("qkv", "out", "gate_up", "down")


def add_lora(
    model: nn.Module, r: int, alpha: float, targets: Sequence[str] = LORA_TARGETS
) -> PeftModel:
    """Wrap ``model`` (modified in place: pass a copy) with fresh LoRA adapters on ``targets``.

    Only the adapters train; the wrapped weights are frozen. The adapters' initialization draws
    from torch's global generator (seed it first); ``lora_B`` starts at zero, so the wrapped model
    computes exactly what ``model`` did until it trains.
    """
    # Imported here: peft pulls in transformers, seconds of import that only LoRA needs.
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0)
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # peft names the missing targets over several lines
        raise ValueError(
            f"LoRA targets {list(targets)} match no nn.Linear of the model "
            f"({str(exc).splitlines()[0]}); use names from {list(LORA_TARGETS)}"
        ) from None


def trainable_names(model: nn.Module) -> list[str]:
    return [name for name, param in model.named_parameters() if param.requires_grad]
