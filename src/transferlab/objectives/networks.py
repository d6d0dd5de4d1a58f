"""Objectives that train networks of their own beside the run's model (electra's generator and
replaced-token head): one module holds them all, and says which of them is the model.

The engine trains one module (its optimizer, gradient clipping, DDP wrapper and checkpoints all
take ``engine.model``), so such an objective's ``ObjectiveConfig.build_networks`` returns an
``ObjectiveNetworks`` module: everything in it is optimized, checkpointed and resumed exactly like
a plain model, and its ``forward`` runs every network of a step in one call (so DDP sees one
forward per backward). Its ``transferred`` submodule is the model the run is about: what tasks
read, what ``load_run`` returns and what export writes; the other networks serve training only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import nn


class ObjectiveNetworks(nn.Module, ABC):
    """The module an objective with networks of its own trains in place of the run's model."""

    @property
    @abstractmethod
    def transferred(self) -> nn.Module:
        """The model the run is about (a ``Transformer``), read downstream and exported."""


def transferred_model(module: nn.Module) -> nn.Module:
    """The model of a trained module: ``module`` itself, or its ``transferred`` model when an
    objective trained networks beside it."""
    return module.transferred if isinstance(module, ObjectiveNetworks) else module
