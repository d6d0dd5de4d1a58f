"""Named model sizes, registered in ``MODEL_PRESETS`` (``ModelConfig(preset="tiny")``).

Pure data: the config registry imports this module lazily, so it must stay free of torch.
Non-embedding parameter counts (``flops.count_parameters``; each lies within 25% of its nominal
size, and together they span ~0.1M to ~85M):

========  =======  ========  =======  ===============
preset    d_model  n_layers  n_heads  non-embedding
========  =======  ========  =======  ===============
nano           64         2        4      100,672  (~0.1M)
micro          96         4        4      443,232  (~0.5M)
tiny          128         5        4    1,004,928  (~1M)
small         256         4        4    3,164,416  (~3M)
medium        320         6        5    7,438,400  (~7M)
base          512         6        8   18,979,328  (~20M)
base125m      768        12       12   84,953,856  (~85M)
========  =======  ========  =======  ===============

``base125m`` is GPT-2 small's shape: with GPT-2's vocabulary padded to 50,304 (a multiple of 64)
and tied embeddings it has 123,587,328 parameters in all (110,119,680 with a 32,768 vocabulary).
It is the size ``benchmarks/gpu.py`` measures on a GPU; on 2 CPU cores it trains ~100x slower
than ``base``.
"""

from __future__ import annotations

from transferlab.config.registry import MODEL_PRESETS

PRESETS: dict[str, dict[str, int]] = {
    "nano": {"d_model": 64, "n_layers": 2, "n_heads": 4},
    "micro": {"d_model": 96, "n_layers": 4, "n_heads": 4},
    "tiny": {"d_model": 128, "n_layers": 5, "n_heads": 4},
    "small": {"d_model": 256, "n_layers": 4, "n_heads": 4},
    "medium": {"d_model": 320, "n_layers": 6, "n_heads": 5},
    "base": {"d_model": 512, "n_layers": 6, "n_heads": 8},
    "base125m": {"d_model": 768, "n_layers": 12, "n_heads": 12},
}

for _name, _fields in PRESETS.items():
    MODEL_PRESETS.add(_name, _fields)
