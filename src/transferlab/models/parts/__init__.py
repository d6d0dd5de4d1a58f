"""The registered parts of a model's blocks, one module each (see ``parts.base``).

Importing this package registers every part; the config registries import it on first lookup.
"""

from transferlab.models.parts import (
    attention,
    gelu_mlp,
    linear,
    low_rank,
    mlp,
    moe,
    norm,
    sparse_low_rank,
)

__all__ = ["attention", "gelu_mlp", "linear", "low_rank", "mlp", "moe", "norm", "sparse_low_rank"]
