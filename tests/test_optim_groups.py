"""Parameter groups by name pattern, shared by every optimizer: the default split (unchanged, and
so are run keys), first match wins, per-group weight decay and lr scale through the schedule,
patterns that select nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from tiny_experiment import tiny_base
from transferlab.config import OPTIMIZERS, ConfigError, ModelConfig, RunConfig, validate
from transferlab.experiment import ExperimentSpec, plan_experiment
from transferlab.models import build_model
from transferlab.optim import AdamWConfig, ConstantConfig, param_groups
from transferlab.train import train
from transferlab.train.engine import Engine
from transferlab.train.run_dir import config_key


def _model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=40))


def _names(model: nn.Module, params: list[nn.Parameter]) -> list[str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [by_id[id(p)] for p in params]


def test_without_groups_configs_and_run_keys_are_as_before():
    # The key of the default run and of a tuned AdamW, computed before optimizer.groups existed.
    assert config_key(RunConfig()) == "70326e30c912ec0b"
    tuned = {"optimizer": {"name": "adamw", "lr": 3e-3, "decay_embeddings": True}}
    assert config_key(validate(RunConfig, tuned)) == "87ed5d65ab0c0a3c"
    assert "groups" not in AdamWConfig().to_dict()  # so task and fine-tuning keys stay too
    with_groups = AdamWConfig(groups=[{"pattern": "embed*", "lr_scale": 0.5}])
    assert AdamWConfig.model_validate(with_groups.to_dict()) == with_groups


def test_the_default_split_decays_matrices_only_in_the_order_adamw_always_had():
    model = _model()
    decay, no_decay = param_groups(model, AdamWConfig(weight_decay=0.1))
    assert (decay.weight_decay, no_decay.weight_decay) == (0.1, 0.0)
    assert _names(model, decay.params) == [
        f"blocks.{i}.{part}.weight"
        for i in range(2)
        for part in ("attn.qkv", "attn.out", "mlp.gate_up", "mlp.down")
    ]
    assert _names(model, no_decay.params) == [
        "embed.weight",
        *(f"blocks.{i}.{norm}_norm.weight" for i in range(2) for norm in ("attn", "mlp")),
        "final_norm.weight",
    ]
    # Zero weight decay still gives two groups: checkpoints keep their layout.
    assert len(param_groups(model, AdamWConfig(weight_decay=0.0))) == 2


def test_first_matching_pattern_wins_and_sets_decay_and_lr_scale():
    model = _model()
    cfg = AdamWConfig(
        lr=0.01,
        weight_decay=0.1,
        groups=[
            {"pattern": "blocks.0.*", "weight_decay": 0.0, "lr_scale": 2.0},
            {"pattern": "*.mlp.*", "lr_scale": 0.5},  # blocks.0.mlp.* went to the entry above
        ],
    )
    default_decay, default_no_decay, block0, mlp_decay = param_groups(model, cfg)
    assert _names(model, default_decay.params) == [
        "blocks.1.attn.qkv.weight",
        "blocks.1.attn.out.weight",
    ]
    assert _names(model, block0.params) == [
        "blocks.0.attn_norm.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.out.weight",
        "blocks.0.mlp_norm.weight",
        "blocks.0.mlp.gate_up.weight",
        "blocks.0.mlp.down.weight",
    ]
    assert (block0.weight_decay, block0.lr_scale) == (0.0, 2.0)
    # An entry without weight_decay keeps the default split's (the mlp has matrices only here).
    assert _names(model, mlp_decay.params) == [
        "blocks.1.mlp.gate_up.weight",
        "blocks.1.mlp.down.weight",
    ]
    assert (mlp_decay.weight_decay, mlp_decay.lr_scale) == (0.1, 0.5)
    assert default_no_decay.weight_decay == 0.0
    torch_groups = cfg.build(model).param_groups
    assert [g["initial_lr"] for g in torch_groups] == [0.01, 0.01, 0.02, 0.005]
    assert [g["weight_decay"] for g in torch_groups] == [0.1, 0.0, 0.0, 0.1]


def test_an_entry_without_weight_decay_splits_its_parameters_like_the_default():
    model = _model()
    cfg = AdamWConfig(weight_decay=0.1, groups=[{"pattern": "blocks.1.*", "lr_scale": 3.0}])
    groups = param_groups(model, cfg)
    decaying, resting = groups[2], groups[3]
    assert (decaying.weight_decay, resting.weight_decay) == (0.1, 0.0)
    assert _names(model, resting.params) == [
        "blocks.1.attn_norm.weight",
        "blocks.1.mlp_norm.weight",
    ]
    assert decaying.lr_scale == resting.lr_scale == 3.0


def test_a_group_lr_scale_holds_through_the_engine_schedule():
    model = _model()
    cfg = AdamWConfig(lr=0.01, groups=[{"pattern": "embed.weight", "lr_scale": 0.25}])
    optimizer = cfg.build(model)
    schedule = ConstantConfig(warmup_steps=4).build(10)
    stub = SimpleNamespace(optimizer=optimizer, step=1, lr_multiplier=schedule)
    Engine._set_lr(stub)  # what the engine does before each step
    assert [g["lr"] for g in optimizer.param_groups] == [0.01 * 0.5, 0.01 * 0.5, 0.25 * 0.01 * 0.5]


def test_the_scaled_group_moves_by_its_own_lr_on_the_first_adam_step():
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    cfg = AdamWConfig(lr=0.1, weight_decay=0.0, groups=[{"pattern": "1.*", "lr_scale": 0.5}])
    optimizer = cfg.build(model)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.ones(2, 3)).square().sum().backward()
    optimizer.step()
    moved = [(p.detach() - b).abs() for p, b in zip(model.parameters(), before, strict=True)]
    # Adam's first step moves each weight by lr * |g| / (|g| + eps), i.e. lr up to 1e-6.
    torch.testing.assert_close(moved[0], torch.full((3, 3), 0.1), rtol=0, atol=1e-6)
    torch.testing.assert_close(moved[1], torch.full((3, 3), 0.05), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "spec",
    [{"name": "muon", "lr": 0.02, "adamw_lr": 0.004}, {"name": "galore", "lr": 0.02, "rank": 4}],
)
def test_muon_and_galore_take_the_same_groups(spec):
    model = _model()
    cfg = OPTIMIZERS.parse({**spec, "groups": [{"pattern": "blocks.1.*", "lr_scale": 0.5}]})
    built = cfg.build(model)
    by_param = {
        name: group for group in built.param_groups for name in _names(model, group["params"])
    }
    adamw_lr = spec.get("adamw_lr", 0.02)
    assert by_param["blocks.0.mlp.down.weight"]["initial_lr"] == 0.02
    assert by_param["blocks.1.mlp.down.weight"]["initial_lr"] == 0.01
    assert by_param["blocks.1.mlp_norm.weight"]["initial_lr"] == adamw_lr * 0.5
    assert by_param["blocks.1.mlp_norm.weight"]["weight_decay"] == 0.0
    assert by_param["embed.weight"]["initial_lr"] == adamw_lr
    assert sum(len(g["params"]) for g in built.param_groups) == len(list(model.parameters()))


def test_a_pattern_that_selects_nothing_is_an_error_naming_it():
    model = _model()
    with pytest.raises(
        ValueError,
        match=r"optimizer.groups\[0\].pattern 'embedding\*' selects nothing: it matches no "
        r"trainable parameter \(names look like \['embed.weight', 'blocks.0.attn_norm.weight'",
    ):
        param_groups(model, AdamWConfig(groups=[{"pattern": "embedding*"}]))
    shadowed = AdamWConfig(groups=[{"pattern": "blocks.*"}, {"pattern": "blocks.0.*"}])
    with pytest.raises(
        ValueError,
        match=r"groups\[1\].pattern 'blocks.0.\*' selects nothing: every parameter it matches "
        r"is taken by an earlier entry",
    ):
        param_groups(model, shadowed)


def test_a_repeated_pattern_is_refused_on_validation():
    with pytest.raises(ValueError, match=r"optimizer.groups repeat the pattern\(s\) \['embed\*'\]"):
        AdamWConfig(groups=[{"pattern": "embed*"}, {"pattern": "embed*", "lr_scale": 2}])


def test_a_run_or_experiment_with_such_a_pattern_stops_before_any_work(tiny_config, tmp_path):
    cfg = tiny_config('optimizer.groups=[{pattern: "blocks.*.mlp.up*", lr_scale: 2}]')
    with pytest.raises(ConfigError, match=r"pattern 'blocks.\*.mlp.up\*' selects nothing"):
        train(cfg)
    assert not (tmp_path / "runs").exists()  # not even the data was prepared into a run
    spec = ExperimentSpec.model_validate(
        {
            "name": "groups",
            "base": tiny_base(2),
            "axes": {"lr": {"a": {}, "b": {"optimizer.groups": [{"pattern": "head*"}]}}},
            "seeds": [0],
            "tasks": [],
        }
    )
    with pytest.raises(ConfigError, match=r"variant overrides .*'head\*' selects nothing"):
        plan_experiment(spec, store=tmp_path / "store")
