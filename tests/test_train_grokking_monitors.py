"""The monitors of grokking that need no held-out data: `weight_norm` and `fourier_embedding`."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from modular_setup import modular_run
from transferlab.config import ConfigError
from transferlab.train import train
from transferlab.train.callbacks.fourier_embedding import frequency_energy, top_k_energy
from transferlab.train.callbacks.weight_norm import weight_norm
from transferlab.train.checkpoint import load_run


def _waves(p: int, frequencies: list[int], d: int = 8) -> torch.Tensor:
    """A [p, d] embedding whose columns are cosines and sines of ``frequencies`` (plus a
    constant column, which the measure ignores)."""
    r = torch.arange(p, dtype=torch.float64)[:, None]
    cols = [torch.ones(p, 1, dtype=torch.float64) * 3.0]
    for k in frequencies:
        cols += [torch.cos(2 * math.pi * k * r / p), torch.sin(2 * math.pi * k * r / p)]
    e = torch.cat(cols, dim=1)
    return torch.cat([e, torch.zeros(p, d - e.shape[1], dtype=torch.float64)], dim=1)


def test_an_embedding_of_one_frequency_has_all_its_energy_there() -> None:
    energy = frequency_energy(_waves(31, [7]))
    assert energy.shape == (15,)
    assert energy.argmax() == 6 and float(energy[6]) == pytest.approx(float(energy.sum()))
    assert top_k_energy(_waves(31, [7]), 1) == pytest.approx(1.0)
    # A high frequency k' > p/2 is the low one p - k' (cos and sin of one pair).
    assert frequency_energy(_waves(31, [24])).argmax() == 31 - 24 - 1
    assert top_k_energy(_waves(31, [2, 9]), 1) == pytest.approx(0.5)
    assert top_k_energy(_waves(31, [2, 9]), 2) == pytest.approx(1.0)


def test_energy_obeys_parseval_without_the_constant_component() -> None:
    e = torch.randn(13, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    centred = e - e.mean(0)
    assert float(frequency_energy(e).sum()) == pytest.approx(13 * float(centred.pow(2).sum()))


def test_an_unstructured_embedding_spreads_its_energy() -> None:
    gen = torch.Generator().manual_seed(1)
    values = [top_k_energy(torch.randn(31, 64, generator=gen), 5) for _ in range(20)]
    assert 5 / 15 < sum(values) / len(values) < 0.45  # 5 of 15 frequencies, plus noise
    with pytest.raises(ValueError, match="odd number of residues"):
        frequency_energy(torch.randn(4, 2))


def test_weight_norm_is_the_l2_norm_of_the_trained_parameters() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[1].bias.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    expected = float(torch.cat([p.detach().flatten() for p in trained]).norm())
    assert weight_norm(model) == pytest.approx(expected, rel=1e-6)
    matrices = torch.cat([model[0].weight.detach().flatten(), model[1].weight.detach().flatten()])
    assert weight_norm(model, matrices_only=True) == pytest.approx(float(matrices.norm()), rel=1e-6)


def test_a_run_logs_both_monitors_every_n_steps_and_at_the_last(tmp_path) -> None:
    cfg = modular_run(
        tmp_path,
        "trainer.callbacks=[{name: weight_norm, every: 5}, {name: fourier_embedding, every: 5, top_k: 2}]",
        "optimizer.weight_decay=1.0",
        steps=12,
    )
    result = train(cfg)
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    norms = {r["step"]: r["weight_norm"] for r in rows if "weight_norm" in r}
    fourier = {r["step"]: r["fourier_top_k_energy"] for r in rows if "fourier_top_k_energy" in r}
    assert sorted(norms) == sorted(fourier) == [5, 10, 12]
    assert all(0.0 < value <= 1.0 for value in fourier.values())
    final = load_run(result.run_dir).model
    assert norms[12] == pytest.approx(weight_norm(final), rel=1e-6)
    matrix_norms = {r["step"]: r["matrix_norm"] for r in rows if "matrix_norm" in r}
    assert sorted(matrix_norms) == [5, 10, 12]
    assert matrix_norms[12] == pytest.approx(weight_norm(final, matrices_only=True), rel=1e-6)
    assert all(matrix_norms[step] < norms[step] for step in matrix_norms)  # the gains add to it


def test_the_fourier_monitor_refuses_a_run_it_cannot_read(tiny_config, tmp_path) -> None:
    with pytest.raises(ConfigError, match="use world.name=modular"):
        tiny_config("trainer.callbacks=[{name: fourier_embedding}]")
    with pytest.raises(ConfigError, match="top_k=5 counts all 5 frequencies of prime 11"):
        modular_run(tmp_path, "trainer.callbacks=[{name: fourier_embedding, top_k: 5}]")
