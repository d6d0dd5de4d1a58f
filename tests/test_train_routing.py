"""The routing callback: Jensen-Shannon divergence in bits on known distributions, per-domain
expert loads on held-out windows equal to a direct computation with the final weights, curves in
metrics.jsonl and the latest loads in routing.json, a resumed run measuring exactly what an
uninterrupted one does, and one-line refusals of runs it cannot serve."""

from __future__ import annotations

import math

import pytest
import torch

from domains_setup import two_domains
from transferlab.config import ConfigError
from transferlab.data import document_windows, prepare_data, validation_domains
from transferlab.models.parts.moe import MixtureOfExperts
from transferlab.train import load_run, read_metrics, train
from transferlab.train.callbacks.routing import (
    js_divergence,
    layer_divergences,
    read_routing,
)

MOE = "model.mlp={name: moe, n_experts: 4, top_k: 2}"


def test_js_divergence_in_bits_on_known_distributions():
    assert js_divergence([1, 0], [0, 1]) == 1.0  # disjoint: one bit
    assert js_divergence([0.3, 0.7], [0.3, 0.7]) == 0.0
    # P = (1, 0), Q = (1/2, 1/2), M = (3/4, 1/4):
    # KL(P||M) = log2(4/3), KL(Q||M) = 1/2 log2(2/3) + 1/2 log2(2)
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(expected, rel=1e-12)
    assert js_divergence([0.5, 0.5], [1, 0]) == pytest.approx(expected, rel=1e-12)


def test_layer_divergences_average_the_pairs_of_domains_per_layer():
    a = [[1.0, 0.0], [0.5, 0.5]]
    b = [[0.0, 1.0], [0.5, 0.5]]
    c = [[1.0, 0.0], [0.5, 0.5]]
    # layer 0: JS(a,b) = 1, JS(a,c) = 0, JS(b,c) = 1; layer 1: all 0
    assert layer_divergences([a, b, c]) == [pytest.approx(2 / 3), 0.0]


def direct_loads(run_dir, windows: int) -> dict[str, list[list[float]]]:
    """Each domain's expert loads per layer, routed by hand from the final weights."""
    loaded = load_run(run_dir)
    data = prepare_data(loaded.config)
    folder, seq_len = data.val_folder(), loaded.config.data.seq_len
    layers = [m for m in loaded.model.modules() if isinstance(m, MixtureOfExperts)]
    loads = {}
    for domain, documents in validation_domains(data).items():
        inputs: list[torch.Tensor] = []
        hooks = [
            m.register_forward_hook(lambda m, a, o, seen=inputs: seen.append(a[0])) for m in layers
        ]
        with torch.no_grad():
            loaded.model(document_windows(folder, documents, seq_len, windows)[:, :-1])
        for hook in hooks:
            hook.remove()
        per_layer = []
        for layer, x in zip(layers, inputs, strict=True):
            counts = layer.route(x.flatten(0, 1)).loads.double()
            per_layer.append((counts / counts.sum()).tolist())
        loads[domain] = per_layer
    return loads


def test_per_domain_loads_equal_a_direct_computation_and_resume_exactly(tiny_config, tmp_path):
    sources = two_domains(tmp_path)
    common = (*sources, MOE, "model.n_layers=2", "trainer.callbacks=[{name: routing, every: 4}]")
    whole = train(tiny_config("name=whole", *common))
    record = read_routing(whole.run_dir)
    assert record["step"] == 8 and record["domains"] == ["prose", "code"]
    assert record["windows"] == {"prose": 4, "code": 4}  # 6 documents x 22 tokens each
    expected = direct_loads(whole.run_dir, windows=16)
    assert record["loads"] == [
        [pytest.approx(row, rel=1e-12) for row in expected[d]] for d in ("prose", "code")
    ]
    js = [js_divergence(a, b) for a, b in zip(*record["loads"], strict=True)]
    assert record["js"] == pytest.approx(js) and len(js) == 2
    assert record["specialization"] == pytest.approx(sum(js) / 2)
    rows = [r for r in read_metrics(whole.run_dir / "metrics.jsonl") if "routing_js_l0" in r]
    assert [r["step"] for r in rows] == [4, 8]
    assert rows[-1]["routing_specialization"] == record["specialization"]
    assert rows[-1]["routing_js_l1"] == record["js"][1]

    part_cfg = tiny_config("name=part", *common)
    assert train(part_cfg, stop_after=5).interrupted
    resumed = train(part_cfg, resume=True)
    assert read_routing(resumed.run_dir) == record

    def routing_rows(run_dir):
        metrics = read_metrics(run_dir / "metrics.jsonl")
        return [{k: v for k, v in r.items() if k.startswith("routing")} for r in metrics]

    assert routing_rows(resumed.run_dir) == routing_rows(whole.run_dir)


def test_a_world_run_is_one_domain_with_loads_and_no_specialization(tiny_config):
    result = train(tiny_config(MOE, "trainer.max_steps=3", "trainer.callbacks=[{name: routing}]"))
    record = read_routing(result.run_dir)
    assert record["domains"] == ["bios"] and "specialization" not in record
    assert len(record["loads"][0]) == 1 and sum(record["loads"][0][0]) == pytest.approx(1.0)
    assert record["loads"] == [direct_loads(result.run_dir, windows=16)["bios"]]
    rows = read_metrics(result.run_dir / "metrics.jsonl")
    assert not any(k.startswith("routing") for row in rows for k in row)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ((), r"routing callback: model\.mlp is 'swiglu', which routes nothing"),
        ((MOE, "data.val_fraction=0"), r"data\.val_fraction is 0, so no domain has held-out"),
    ],
)
def test_runs_it_cannot_serve_are_refused_in_one_line(tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        tiny_config(*overrides, "trainer.callbacks=[{name: routing}]")
    assert "\n" not in str(info.value)
