"""What of benchmarks/gpu.py runs without a GPU: its options, the peak table, the MFU arithmetic,
and the clean exit of benchmarks/gpu.sh on a machine with no CUDA device."""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType

import pytest

from benchmark_scripts import BENCHMARKS, import_benchmark
from transferlab.config import ModelConfig
from transferlab.models import flops_per_token


@pytest.fixture(scope="module")
def gpu() -> ModuleType:
    return import_benchmark("gpu")


def test_without_a_cuda_device_the_script_says_so_in_one_line_and_exits_cleanly():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu.sh"), "--steps", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "no CUDA device found (torch.cuda.is_available() is False): nothing to measure"
    ]


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),  # SXM
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA H200 NVL", 835.0),
        ("NVIDIA GH200 480GB", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L40", 181.0),
        ("NVIDIA L4", 121.0),
        ("Tesla V100-SXM2-16GB", None),  # no bf16 tensor cores
    ],
)
def test_the_peak_of_a_gpu_is_found_by_its_device_name(gpu, name, peak):
    assert gpu.peak_tflops(name) == peak


def test_mfu_is_model_flops_per_second_over_the_peak(gpu):
    cfg = ModelConfig(preset="base125m", vocab_size=50_304)
    per_token = flops_per_token(cfg, 1024)
    d, layers, ffn = 768, 12, 2048
    assert (
        per_token == 6 * (layers * (4 * d * d + 3 * d * ffn) + d * 50_304) + 12 * layers * d * 1024
    )
    assert gpu.model_flop_utilisation(1e6, 989_000_000, 989.0) == pytest.approx(1.0, rel=1e-12)
    # An invented 400k tokens/s of base125m against 989 TFLOP/s: 342 TFLOP/s of model FLOPs.
    assert gpu.model_flop_utilisation(400_000, per_token, 989.0) == pytest.approx(
        400_000 * 854_654_976 / 989e12, rel=1e-12
    )
    assert gpu.model_flop_utilisation(400_000, per_token, 989.0) == pytest.approx(0.3457, abs=1e-4)


def test_options_default_to_the_125m_preset_and_refuse_what_cannot_run(gpu, capsys):
    args = gpu.parse_args([])
    assert (args.preset, args.vocab, args.seq_len, args.batch_size) == (
        "base125m",
        50_304,
        1024,
        16,
    )
    assert args.peak is None and not args.compile and not args.skip_tests
    assert gpu.parse_args(["--peak", "500", "--compile"]).peak == 500.0
    for argv, message in [
        (["--peak", "0"], "--peak 0.0: expected the GPU's bf16 peak in TFLOP/s (> 0)"),
        (["--micro-batch-size", "5"], "--micro-batch-size 5 must divide --batch-size 16"),
        (["--steps", "0"], "--warmup and --steps must be at least 1"),
    ]:
        with pytest.raises(SystemExit) as exited:
            gpu.parse_args(argv)
        assert exited.value.code == 2
        assert capsys.readouterr().err.strip().endswith(message)


def test_a_gpu_missing_from_the_table_asks_for_its_peak_before_measuring(gpu, monkeypatch, capsys):
    monkeypatch.setattr(gpu.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu.torch.cuda, "get_device_name", lambda index=0: "Tesla V100-SXM2-16GB")
    monkeypatch.setattr(gpu, "measure", lambda *a: pytest.fail("measured without a peak"))
    assert gpu.main([]) == 2
    assert capsys.readouterr().out == (
        "no bf16 peak known for GPU 'Tesla V100-SXM2-16GB'; pass --peak TFLOPS (its dense bf16 "
        "peak)\n"
    )
