"""The pure helpers of benchmarks/objective_throughput.py (the benchmark itself is not a test):
which objectives it compares, and that timing an objective leaves its batches and counts as
they are."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

from benchmark_scripts import import_benchmark
from transferlab.config import OBJECTIVES
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.objectives import MlmConfig


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return import_benchmark("objective_throughput")


def test_the_reference_comes_first_and_fine_tuning_objectives_are_left_out(bench) -> None:
    assert bench.pretraining_objectives(["ul2", "answer_lm", "mlm", "clm"]) == ["clm", "mlm", "ul2"]
    registered = bench.pretraining_objectives(OBJECTIVES.names())
    assert registered[0] == "clm"
    assert set(registered) == set(OBJECTIVES.names()) - {"answer_lm"}
    assert len(registered) == len(set(registered))


def test_without_clm_there_is_nothing_to_compare_against(bench) -> None:
    with pytest.raises(ValueError, match="no 'clm' objective registered"):
        bench.pretraining_objectives(["mlm", "ul2"])


def test_timing_an_objective_keeps_its_batches_and_records_its_targets(bench) -> None:
    special = SpecialTokenIds(pad=0, bos=1, eos=2, mask=3)
    inner = MlmConfig().build(special, 64)
    timed = bench.TimedObjective(MlmConfig().build(special, 64))
    windows = torch.randint(4, 64, (6, 33), generator=torch.Generator().manual_seed(0))
    expected = inner.make_batch(windows, torch.Generator().manual_seed(7))
    batch = timed.make_batch(windows, torch.Generator().manual_seed(7))
    assert batch.keys() == expected.keys()
    assert all(torch.equal(batch[key], expected[key]) for key in batch)
    assert timed.make_batch_s > 0
    assert timed.targets == 0  # counted only when the engine asks
    assert timed.n_targets(batch) == inner.n_targets(expected) == timed.targets > 0
    assert timed.attention == inner.attention == "bidirectional"


def test_the_head_is_counted_at_the_target_positions_only(bench) -> None:
    assert bench.head_at_targets(1000, 600, 1.0) == 1000  # clm: a target everywhere
    assert bench.head_at_targets(1000, 600, 0.25) == 550  # 3/4 of the head's 600 skipped
    assert bench.head_at_targets(1000, 600, 0.0) == 400
    with pytest.raises(ValueError, match=r"target_share=1.5 is not a share"):
        bench.head_at_targets(1000, 600, 1.5)
