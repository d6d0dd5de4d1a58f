"""Typed configs: YAML + dotted overrides, registries, one-line errors naming field and value."""

from __future__ import annotations

import pytest

from transferlab.config import (
    OBJECTIVES,
    ConfigError,
    ModelConfig,
    Registry,
    RunConfig,
    apply_overrides,
    load_config,
    validate,
)
from transferlab.config.registry import REGISTRIES


def test_defaults_build_a_valid_run_config():
    cfg = RunConfig()
    assert cfg.objective.name == "clm"
    assert cfg.optimizer.name == "adamw"
    assert cfg.schedule.name == "cosine"
    assert cfg.world.name == "bios"


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: a\nmodel:\n  d_model: 64\nobjective: clm\n")
    cfg = load_config(
        RunConfig, path, ["model.d_model=128", "objective.name=mlm", "objective.mask_prob=0.3"]
    )
    assert cfg.name == "a"
    assert cfg.model.d_model == 128
    assert cfg.objective.name == "mlm"
    assert cfg.objective.mask_prob == pytest.approx(0.3)


def test_override_values_are_parsed_as_yaml():
    data = apply_overrides({}, ["a.b=3", "a.c=true", "a.d=1e-3", "a.e=hello", "a.f=[1, 2]"])
    assert data == {"a": {"b": 3, "c": True, "d": 1e-3, "e": "hello", "f": [1, 2]}}


def test_config_round_trips_through_its_dict():
    cfg = load_config(RunConfig, None, ["objective=mlm", "schedule.name=wsd", "model.preset=tiny"])
    again = validate(RunConfig, cfg.to_dict())
    assert again == cfg
    assert again.to_dict()["objective"]["mask_prob"] == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.d_model=abc"], "model.d_model: got 'abc'; expected a valid integer"),
        (["model.d_model=-4"], "model.d_model: got -4; expected greater than 0"),
        (["modle.d_model=4"], "modle: unknown field"),
        (
            ["objective=nope"],
            "objective: unknown objective 'nope'; expected one of ['answer_lm', 'clm', ",
        ),
        (["objective=mlm", "objective.mask_prob=2"], "objective.mask_prob: got 2; expected"),
        (["model.d_model=65"], "model: d_model=65 is not divisible by n_heads=4"),
        (
            ["schedule.warmup_steps=500", "trainer.max_steps=100"],
            "schedule.warmup_steps=500 must be less than trainer.max_steps=100",
        ),
        (
            ["trainer.precision=fp8"],
            "trainer.precision: got 'fp8'; expected 'auto', 'fp32' or 'bf16'",
        ),
        (["model"], "override 'model' is not of the form key.path=value"),
    ],
)
def test_bad_values_fail_in_one_line_naming_field_and_value(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(RunConfig, None, overrides)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(RunConfig, tmp_path / "nope.yaml")


def test_model_preset_fills_fields_and_explicit_fields_win():
    preset = ModelConfig(preset="tiny")
    custom = ModelConfig(preset="tiny", n_layers=preset.n_layers + 1)
    assert custom.d_model == preset.d_model
    assert custom.n_layers == preset.n_layers + 1


def test_registry_lists_and_rejects_duplicates():
    registry = Registry("thing", "transferlab.config")
    try:
        registry.add("a", 1)
        assert registry.names() == ["a"]
        assert registry.get("a") == 1
        with pytest.raises(ValueError, match="registered twice"):
            registry.add("a", 2)
        assert "clm" in OBJECTIVES.names()
    finally:  # a registry stays listed once made: later `components` tests would list it
        REGISTRIES.remove(registry)


def test_overrides_index_into_lists():
    data = {"data": {"sources": [{"name": "jsonl", "path": "a"}, "python_stdlib"]}}
    out = apply_overrides(data, ["data.sources.0.limit=5", "data.sources.1.split=function"])
    assert out["data"]["sources"] == [
        {"name": "jsonl", "path": "a", "limit": 5},
        {"name": "python_stdlib", "split": "function"},  # a name expands to a mapping
    ]
    assert data["data"]["sources"][0] == {"name": "jsonl", "path": "a"}  # the input is kept
    assert apply_overrides({"f": [1, 2]}, ["f.1=7"]) == {"f": [1, 7]}
    with pytest.raises(
        ConfigError, match=r"'2' is not an index of a list of 2 item\(s\); use 0 to 1"
    ):
        apply_overrides(data, ["data.sources.2.limit=5"])
    with pytest.raises(ConfigError, match="'x' is not an index of a list of 0 item"):
        apply_overrides({"f": []}, ["f.x=1"])
