"""Parameter groups, the one place every optimizer (adamw, muon, galore) builds its groups from.

Each trainable parameter (a tied weight once) gets a weight decay and an lr scale: from the first
``optimizer.groups`` entry whose ``pattern`` matches its name (``fnmatch.fnmatchcase``), else the
default split, under which matrices decay and norm gains, biases and embeddings (unless
``decay_embeddings``) do not. Decaying a norm gain pulls it toward 0 rather than toward its
identity value 1, and decaying embeddings shrinks rare tokens' rows, which see few gradient
updates to counter it.

Optimizers that treat matrices differently (Muon, GaLore) also ask which parameters are *hidden
matrices*: 2-D weights other than the vocabulary matrices (the embedding and the output head),
i.e. the blocks' projections, the factors ``u``, ``v`` of a ``low_rank`` linear included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

from torch import nn

from transferlab.config.schemas import OptimizerConfig, ParamGroupConfig


@dataclass
class ParamGroup:
    """Parameters that share a weight decay and an lr scale (and, when asked, a kind)."""

    weight_decay: float
    lr_scale: float
    hidden: bool  # hidden matrices (always False unless the caller separates them)
    params: list[nn.Parameter] = field(default_factory=list)

    def split(self, keep: Callable[[nn.Parameter], bool]) -> tuple[ParamGroup, ParamGroup]:
        """(the parameters ``keep`` holds for, the others), each with this group's settings."""
        kept = [p for p in self.params if keep(p)]
        rest = [p for p in self.params if not keep(p)]
        return replace(self, params=kept), replace(self, params=rest)

    def torch_group(self, base_lr: float, **options: Any) -> dict[str, Any]:
        """The group as torch optimizers take it. ``initial_lr`` is the base the engine's
        schedule multiplies each step, so the lr scale holds through the whole schedule."""
        lr = base_lr * self.lr_scale
        return {
            "params": self.params,
            "weight_decay": self.weight_decay,
            "lr": lr,
            "initial_lr": lr,
            **options,
        }


def vocabulary_matrices(model: nn.Module) -> set[int]:
    """Ids of the embedding weights and of the output head (``output_weight``, which a
    ``Transformer`` defines; a tied head is the embedding itself)."""
    ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    for module in model.modules():
        head = getattr(module, "output_weight", None)
        if isinstance(head, nn.Parameter):
            ids.add(id(head))
    return ids


def param_groups(
    model: nn.Module, cfg: OptimizerConfig, separate_hidden: bool = False
) -> list[ParamGroup]:
    """``model``'s trainable parameters in groups by ``cfg`` (``groups``, ``weight_decay``,
    ``decay_embeddings``); with ``separate_hidden`` no group mixes hidden matrices with others.

    Order: the default split's decaying group, its non-decaying group, then the groups of each
    ``cfg.groups`` entry in turn (hidden matrices first within each); empty groups are left out.
    Without ``cfg.groups`` this is the order AdamW always had, so its checkpoints keep their
    layout. A pattern that claims no parameter is a ValueError naming it.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # tied: once
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    vocabulary = vocabulary_matrices(model)
    claimed = [0] * len(cfg.groups)
    groups: dict[tuple[int, bool, bool], ParamGroup] = {}
    for name, param in named:
        slot = next((i for i, g in enumerate(cfg.groups) if fnmatchcase(name, g.pattern)), None)
        rule = None if slot is None else cfg.groups[slot]
        if slot is not None:
            claimed[slot] += 1
        decays = param.ndim >= 2 and (cfg.decay_embeddings or id(param) not in embeddings)
        if rule is not None and rule.weight_decay is not None:
            decays = True  # the entry's own decay: one group whatever the default split says
        hidden = separate_hidden and param.ndim == 2 and id(param) not in vocabulary
        key = (-1 if slot is None else slot, decays, hidden)
        if key not in groups:
            groups[key] = ParamGroup(_decay(cfg, rule, decays), _scale(rule), hidden)
        groups[key].params.append(param)
    _check_claimed(cfg.groups, claimed, [n for n, _ in named])
    order = sorted(groups, key=lambda k: (k[0], not k[1], not k[2]))
    return [groups[key] for key in order]


def _decay(cfg: OptimizerConfig, rule: ParamGroupConfig | None, decays: bool) -> float:
    if rule is not None and rule.weight_decay is not None:
        return rule.weight_decay
    return cfg.weight_decay if decays else 0.0


def _scale(rule: ParamGroupConfig | None) -> float:
    return 1.0 if rule is None else rule.lr_scale


def _check_claimed(rules: list[ParamGroupConfig], claimed: list[int], names: list[str]) -> None:
    for i, (rule, count) in enumerate(zip(rules, claimed, strict=True)):
        if count:
            continue
        matched = any(fnmatchcase(name, rule.pattern) for name in names)
        why = (
            "every parameter it matches is taken by an earlier entry (the first match wins)"
            if matched
            else f"it matches no trainable parameter (names look like {names[:3]})"
        )
        raise ValueError(
            f"optimizer.groups[{i}].pattern {rule.pattern!r} selects nothing: {why}; fix or "
            "drop the entry"
        )
