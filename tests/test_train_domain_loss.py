"""The domain_loss callback: each domain's validation loss equal to a direct computation with the
final weights, their unweighted mean, the trainer's val_loss where both read the same windows, a
resumed run logging exactly what an uninterrupted one does, and a one-line refusal of a run
without held-out text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domains_setup import two_domains
from transferlab.config import ConfigError
from transferlab.data import document_windows, prepare_data, validation_domains
from transferlab.train import load_run, read_metrics, train


def direct_losses(run_dir, windows: int) -> dict[str, float]:
    """Each domain's mean next-token loss on its first held-out windows, from the final weights."""
    loaded = load_run(run_dir)
    data = prepare_data(loaded.config)
    folder, seq_len = data.val_folder(), loaded.config.data.seq_len
    out = {}
    for domain, documents in validation_domains(data).items():
        rows = document_windows(folder, documents, seq_len, windows)
        with torch.no_grad():
            logits = loaded.model(rows[:, :-1])
        out[domain] = float(F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten()))
    return out


def domain_rows(run_dir) -> list[dict]:
    rows = read_metrics(run_dir / "metrics.jsonl")
    return [{k: v for k, v in r.items() if k.startswith("val_loss_")} | {"step": r["step"]}
            for r in rows if "val_loss_domain_mean" in r]  # fmt: skip


def test_per_domain_losses_equal_a_direct_computation_and_resume_exactly(tiny_config, tmp_path):
    # 3 windows per domain in micro batches of 2: the last micro batch is short, and the mean
    # is per target over all of them.
    common = (*two_domains(tmp_path), "trainer.micro_batch_size=2",
              "trainer.callbacks=[{name: domain_loss, every: 4, windows: 3}]")  # fmt: skip
    whole = train(tiny_config("name=whole", *common))
    rows = domain_rows(whole.run_dir)
    assert [r["step"] for r in rows] == [4, 8]
    expected = direct_losses(whole.run_dir, windows=3)
    assert set(expected) == {"prose", "code"}
    last = rows[-1]
    for domain, loss in expected.items():
        assert last[f"val_loss_{domain}"] == pytest.approx(loss, rel=1e-6)
    per_domain = [last["val_loss_prose"], last["val_loss_code"]]
    assert last["val_loss_domain_mean"] == pytest.approx(np.mean(per_domain), rel=1e-12)
    assert set(last) == {"step", "val_loss_prose", "val_loss_code", "val_loss_domain_mean"}

    part_cfg = tiny_config("name=part", *common)
    assert train(part_cfg, stop_after=5).interrupted
    resumed = train(part_cfg, resume=True)
    assert domain_rows(resumed.run_dir) == rows


def test_a_world_run_is_one_domain_equal_to_val_loss_on_the_same_windows(tiny_config):
    # The trainer's validation reads the first eval_batches * batch_size = 16 windows of the val
    # split, which here is the one domain: the callback reading 16 reads the same windows.
    result = train(tiny_config("trainer.callbacks=[{name: domain_loss, windows: 16}]"))
    (last,) = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if "val_loss_bios" in r]
    assert last["step"] == 8
    assert last["val_loss_bios"] == last["val_loss_domain_mean"]
    assert last["val_loss_bios"] == pytest.approx(last["val_loss"], rel=1e-12)


def test_a_run_without_held_out_text_is_refused_in_one_line(tiny_config):
    with pytest.raises(ConfigError, match=r"domain_loss callback: data\.val_fraction is 0, so no "
                       r"domain has held-out text to measure; raise") as info:  # fmt: skip
        tiny_config("data.val_fraction=0", "trainer.callbacks=[{name: domain_loss}]")
    assert "\n" not in str(info.value)
