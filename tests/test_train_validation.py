"""The trainer's validation covers every data domain: on a two-domain mixture whose val split is
ordered by domain it reads an equal share of windows from each, logs each domain's loss (equal
to a direct computation) and ``val_loss`` as exactly the stated weighting of them; a one-domain
run reads exactly the windows, and logs exactly the value, of validation before it covered every
domain; resume stays bit-identical; run keys stay as they were at the default weighting."""

from __future__ import annotations

import json

import pytest
import torch

from domains_setup import two_domains
from transferlab.config import ConfigError
from transferlab.data import PackedLoader, document_windows, prepare_data, validation_domains
from transferlab.data.loader import count_windows
from transferlab.train import load_run, read_metrics, train
from transferlab.train.batching import local_micro_batches, plan_batches
from transferlab.train.callbacks.validation import validation_set
from transferlab.train.distributed import DistContext
from transferlab.train.rng import seeded_generator
from transferlab.train.run_dir import config_key, result_config

TIMING = ("tokens_per_s", "elapsed_s")
# 18 held-out texts of 22 tokens per domain: 12 windows each, so the first 16 windows of the
# val split (eval_batches * batch_size) are 12 of prose and 4 of code.
DOMAINS_ARGS = ("data.val_fraction=0.3",)


def two_domain_config(tiny_config, tmp_path, *overrides: str):
    return tiny_config(*two_domains(tmp_path), *DOMAINS_ARGS, *overrides)


def validation_rows(run_dir) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "val_loss" in r]


def recorded(run_dir) -> dict:
    return json.loads((run_dir / "run_info.json").read_text())["validation"]


def direct_loss(loaded, windows: torch.Tensor) -> float:
    """Mean loss per target of ``windows`` from the run's final weights, in one forward."""
    data = prepare_data(loaded.config)
    objective = loaded.config.objective.build(data.special, data.vocab_size)
    batch = objective.make_batch(windows, seeded_generator(loaded.config.seed, "eval"))
    with torch.no_grad():
        return float(objective.loss(loaded.model, batch).sum) / objective.n_targets(batch)


def test_validation_reads_every_domain_and_val_loss_is_the_mixture_weighting(tiny_config, tmp_path):
    cfg = two_domain_config(tiny_config, tmp_path, "data.mixture={weights: {prose: 3, code: 1}}")
    result = train(cfg)
    data = prepare_data(cfg)
    folder, seq_len = data.val_folder(), cfg.data.seq_len
    ranges = validation_domains(data)
    assert list(ranges) == ["prose", "code"]  # the val split holds prose first
    available = {d: len(document_windows(folder, r, seq_len, 100)) for d, r in ranges.items()}
    assert available == {"prose": 12, "code": 12}
    assert recorded(result.run_dir) == {
        "weighting": "mixture",
        "weights": {"prose": 0.75, "code": 0.25},
        "windows": {"prose": 8, "code": 8},  # an equal share of the 16 windows
    }
    rows = validation_rows(result.run_dir)
    assert [r["step"] for r in rows] == [4, 8]
    for row in rows:
        assert row["val_loss"] == 0.75 * row["val_loss/prose"] + 0.25 * row["val_loss/code"]
    loaded = load_run(result.run_dir)
    for domain, documents in ranges.items():
        expected = direct_loss(loaded, document_windows(folder, documents, seq_len, 8))
        assert rows[-1][f"val_loss/{domain}"] == pytest.approx(expected, rel=1e-6)
    assert result.val_loss == rows[-1]["val_loss"]


def old_validation_batches(cfg, data, objective) -> list[dict]:
    """The trainer's validation batches before validation covered every domain: the first
    ``eval_batches * batch_size`` windows of the val split, one make_batch, one process."""
    t, folder = cfg.trainer, data.val_folder()
    rows = min(t.eval_batches * t.batch_size, count_windows(folder, cfg.data.seq_len))
    window = PackedLoader(folder, cfg.data.seq_len, rows).fixed_batches(1)[0]
    batch = objective.make_batch(window, seeded_generator(cfg.seed, "eval"))
    return local_micro_batches(batch, plan_batches(t, 1), 0)


@pytest.mark.parametrize("objective", ["clm", "mlm"])  # mlm: the same seeded masks too
def test_a_one_domain_run_validates_exactly_as_before(tiny_config, objective):
    cfg = tiny_config(f"objective={objective}", "trainer.micro_batch_size=4")
    result = train(cfg)
    data = prepare_data(cfg)
    built = cfg.objective.build(data.special, data.vocab_size)
    old = old_validation_batches(cfg, data, built)
    one_process = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    new = validation_set(cfg, data, built, plan_batches(cfg.trainer, 1), one_process)
    assert list(new.micro_batches) == ["bios"] and new.weights == {"bios": 1.0}
    assert len(new.micro_batches["bios"]) == len(old) == 4  # 16 windows in micro batches of 4
    for a, b in zip(new.micro_batches["bios"], old, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The logged value is the old batches' loss, bit for bit, and no per-domain key is added.
    rows = validation_rows(result.run_dir)
    loaded = load_run(result.run_dir)
    with torch.no_grad():
        total = sum(float(built.loss(loaded.model, m).sum) for m in old)
    assert rows[-1]["val_loss"] == total / sum(built.n_targets(m) for m in old)
    assert not [k for r in rows for k in r if k.startswith("val_loss/")]


@pytest.mark.parametrize(
    ("weighting", "expected"),
    [("uniform", lambda tokens: {"prose": 0.5, "code": 0.5}),
     ("tokens", lambda tokens: {d: n / sum(tokens.values()) for d, n in tokens.items()})],
)  # fmt: skip
def test_tokens_and_uniform_weightings(tiny_config, tmp_path, weighting, expected):
    cfg = two_domain_config(tiny_config, tmp_path, f"trainer.validation_weighting={weighting}")
    result = train(cfg)
    data = prepare_data(cfg)
    folder = data.val_folder()
    tokens = {
        d: sum(len(folder.document(i)) for i in docs)
        for d, docs in validation_domains(data).items()
    }
    weights = recorded(result.run_dir)["weights"]
    assert weights == pytest.approx(expected(tokens), rel=1e-15)
    for row in validation_rows(result.run_dir):
        losses = [row["val_loss/prose"], row["val_loss/code"]]
        stated = weights["prose"] * losses[0] + weights["code"] * losses[1]
        assert row["val_loss"] == stated
        assert min(losses) < row["val_loss"] < max(losses)


def test_the_default_mixture_weighting_is_the_natural_token_share(tiny_config, tmp_path):
    cfg = two_domain_config(tiny_config, tmp_path)
    result = train(cfg)
    info = json.loads((prepare_data(cfg).root / "info.json").read_text())
    natural = {row["name"]: row["tokens"] for row in info["domains"]}
    total = sum(natural.values())
    assert recorded(result.run_dir)["weights"] == {d: n / total for d, n in natural.items()}


def test_resume_with_per_domain_validation_is_bit_identical(tiny_config, tmp_path):
    def rows(run_dir):
        return [{k: v for k, v in r.items() if k not in TIMING}
                for r in read_metrics(run_dir / "metrics.jsonl")]  # fmt: skip

    whole = train(two_domain_config(tiny_config, tmp_path, "name=whole"))
    part_cfg = two_domain_config(tiny_config, tmp_path, "name=part")
    assert train(part_cfg, stop_after=5).interrupted
    resumed = train(part_cfg, resume=True)
    assert rows(resumed.run_dir) == rows(whole.run_dir)
    assert {"val_loss/prose", "val_loss/code"} <= set(rows(whole.run_dir)[-1])
    assert resumed.val_loss == whole.val_loss


def test_the_weighting_is_keyed_only_away_from_its_default(tiny_config):
    default = tiny_config()
    assert "validation_weighting" not in result_config(default.to_dict())["trainer"]
    assert config_key(default) == config_key(tiny_config("trainer.validation_weighting=mixture"))
    assert config_key(default) != config_key(tiny_config("trainer.validation_weighting=uniform"))
    with pytest.raises(ConfigError, match="trainer.validation_weighting"):
        tiny_config("trainer.validation_weighting=mean")


def test_only_runs_of_several_domains_get_the_every_domain_marker(tiny_config, tmp_path):
    """Their val_loss changed meaning, so their keys change; one-domain keys stay as before."""
    assert "validation" not in result_config(tiny_config().to_dict())
    two = two_domain_config(tiny_config, tmp_path).to_dict()
    assert result_config(two)["validation"] == "every_domain"
    one = {**two, "data": {**two["data"], "sources": two["data"]["sources"][:1]}}
    assert "validation" not in result_config(one)


def test_a_domain_without_weight_takes_no_part_in_validation(tiny_config, tmp_path):
    cfg = two_domain_config(tiny_config, tmp_path, "data.mixture={weights: {prose: 1}}")
    result = train(cfg)
    assert recorded(result.run_dir)["weights"] == {"prose": 1.0}
    last = validation_rows(result.run_dir)[-1]
    assert last["val_loss"] == last["val_loss/prose"]
    assert "val_loss/code" not in last
