"""The hessian_trace callback: the logged estimate equals Hutchinson's estimate computed directly
from the final weights on the same held-out windows with the same probes (by another route:
autograd's hvp of the whole loss at once), its steps, a training run bit-identical with and
without it, a resumed run logging exactly what an uninterrupted one does, the model's loss still
chunked outside it, and one-line refusals of bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from transferlab.analysis.flatness import rademacher_probe
from transferlab.config import ConfigError
from transferlab.data import document_windows, prepare_data, validation_domains
from transferlab.models.loss import linear_cross_entropy, twice_differentiable
from transferlab.train import load_run, read_metrics, train
from transferlab.train.rng import derive_seed

TIMING = ("tokens_per_s", "elapsed_s")
FIELDS = ("hessian_trace", "hessian_trace_low", "hessian_trace_high")


def callback(**fields) -> str:
    inner = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return f"trainer.callbacks=[{{name: hessian_trace, {inner}}}]"


def direct_samples(run_dir, windows: int, probes: int, blocks: bool = False) -> list[float]:
    """v^T H v of each probe the callback drew at the last step, from the final weights: the
    mean next-token loss of the first held-out windows in one piece, H v by autograd's hvp."""
    loaded = load_run(run_dir)
    model, cfg = loaded.model, loaded.config
    data = prepare_data(cfg)
    (documents,) = validation_domains(data).values()
    rows = document_windows(data.val_folder(), documents, cfg.data.seq_len, windows)
    named = dict(model.named_parameters())
    names = [n for n in named if n.startswith("blocks.") or not blocks]
    model.eval()

    def loss(*params):
        values = dict(named) | dict(zip(names, params, strict=True))
        logits = torch.func.functional_call(model, values, (rows[:, :-1],))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())

    params = tuple(named[n].detach() for n in names)
    seed = derive_seed(cfg.seed, "hessian_trace", 0, cfg.trainer.max_steps)
    samples = []
    with sdpa_kernel(SDPBackend.MATH):
        for index in range(probes):
            probe = tuple(rademacher_probe(params, seed, index))
            _, hvp = torch.autograd.functional.hvp(loss, params, probe)
            samples.append(sum(float((h * v).sum()) for h, v in zip(hvp, probe, strict=True)))
    return samples


def trace_rows(run_dir) -> list[dict]:
    rows = read_metrics(run_dir / "metrics.jsonl")
    return [r for r in rows if "hessian_trace" in r]


@pytest.mark.parametrize("parameters", ["all", "blocks"])
def test_the_logged_trace_is_hutchinsons_estimate_on_the_held_out_windows(tiny_config, parameters):
    # 5 windows in micro batches of 2: the terms are summed per target over uneven micro batches.
    cfg = tiny_config(
        "trainer.micro_batch_size=2",
        callback(probes=4, windows=5, every=4, parameters=parameters),
    )
    result = train(cfg)
    rows = trace_rows(result.run_dir)
    assert [r["step"] for r in rows] == [4, 8]
    last = rows[-1]
    samples = direct_samples(result.run_dir, 5, 4, blocks=parameters == "blocks")
    assert last["hessian_trace"] == pytest.approx(np.mean(samples), rel=1e-4)
    assert last["hessian_trace_low"] < last["hessian_trace"] < last["hessian_trace_high"]
    # The t interval over the 4 probes (3 df).
    half = 3.182446 * np.std(samples, ddof=1) / 2
    assert last["hessian_trace_high"] - last["hessian_trace"] == pytest.approx(half, rel=1e-3)
    assert (last["hessian_trace_probes"], last["hessian_trace_windows"]) == (4, 5)


def test_blocks_leave_out_the_embedding_and_head(tiny_config):
    everything = trace_rows(train(tiny_config("name=a", callback(probes=2))).run_dir)
    blocks = trace_rows(
        train(tiny_config("name=b", callback(probes=2, parameters="blocks"))).run_dir
    )
    assert everything[-1]["hessian_trace"] != blocks[-1]["hessian_trace"]


def test_it_measures_at_the_listed_steps_every_n_steps_and_at_the_last(tiny_config):
    rows = trace_rows(train(tiny_config(callback(probes=2, every=3, at="[1, 5]"))).run_dir)
    assert [r["step"] for r in rows] == [1, 3, 5, 6, 8]
    only_last = trace_rows(train(tiny_config("name=last", callback(probes=2))).run_dir)
    assert [r["step"] for r in only_last] == [8]


def test_training_is_bit_identical_with_and_without_the_callback(tiny_config):
    plain = train(tiny_config("name=plain"))
    measured = train(tiny_config("name=measured", callback(probes=3, every=2)))

    def losses(result):
        return [(r["step"], r["train_loss"], r.get("val_loss"), r["grad_norm"])
                for r in read_metrics(result.run_dir / "metrics.jsonl")]  # fmt: skip

    assert losses(plain) == losses(measured)
    for (name, x), (_, y) in zip(
        load_run(plain.run_dir).model.state_dict().items(),
        load_run(measured.run_dir).model.state_dict().items(),
        strict=True,
    ):
        assert torch.equal(x, y), name


def test_a_resumed_run_logs_exactly_what_an_uninterrupted_one_does(tiny_config):
    common = callback(probes=3, every=2, windows=4)
    whole = train(tiny_config("name=whole", common))
    part_cfg = tiny_config("name=part", common)
    assert train(part_cfg, stop_after=5).interrupted
    resumed = train(part_cfg, resume=True)

    def rows(result):
        return [{k: v for k, v in r.items() if k not in TIMING}
                for r in read_metrics(result.run_dir / "metrics.jsonl")]  # fmt: skip

    assert rows(resumed) == rows(whole)
    assert [r["step"] for r in trace_rows(resumed.run_dir)] == [2, 4, 6, 8]


def test_the_chunked_loss_stays_outside_and_agrees_with_the_plain_path():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 4, generator=g, requires_grad=True)
    weight = torch.randn(9, 4, generator=g)
    targets = torch.tensor([0, 3, -100, 8, 1, 2])
    chunked = linear_cross_entropy(hidden, weight, targets)
    with twice_differentiable():
        plain = linear_cross_entropy(hidden, weight, targets)
        (grad,) = torch.autograd.grad(plain, hidden, create_graph=True)
        assert grad.requires_grad  # differentiable again
    assert float(plain.detach()) == pytest.approx(float(chunked.detach()), rel=1e-6)
    with pytest.raises(RuntimeError):  # the chunked path differentiates once only
        (grad,) = torch.autograd.grad(chunked, hidden, create_graph=True)
        torch.autograd.grad(grad.sum(), hidden)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("data.val_fraction=0", callback(probes=2)),
         r"hessian_trace callback: data\.val_fraction is 0, so no domain has held-out text to "
         r"differentiate; raise"),
        ((callback(at="[3, 9, 12]"),),
         r"at lists steps \[9, 12\] beyond trainer\.max_steps=8; drop them or train longer"),
        ((callback(at="[0, 2]"),), r"steps count from 1, give positive steps"),
        ((callback(probes=1),), r"probes"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_in_one_line(tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        tiny_config(*overrides)
    assert "\n" not in str(info.value)
