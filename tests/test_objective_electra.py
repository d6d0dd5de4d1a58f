"""The electra objective: which positions the generator fills in, which are replaced, the
discriminator's labels and loss weights, where gradients flow, exact resume, and that the
discriminator is the model tasks read (and the one reading they can take)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from typer.testing import CliRunner

from tiny_experiment import tiny_base
from transferlab.cli import app
from transferlab.config import ConfigError, ModelConfig, RunConfig, validate
from transferlab.config.registry import TASKS
from transferlab.data.tokenizer import SpecialTokenIds
from transferlab.evaluate import readers
from transferlab.evaluate.base import Task
from transferlab.evaluate.readers import Reader, as_reader, reading_error
from transferlab.experiment import ExperimentSpec, executor, plan_experiment
from transferlab.models.flops import flops_per_token
from transferlab.models.transformer import ModelOutput
from transferlab.objectives import ClmConfig, ElectraConfig
from transferlab.objectives.electra import (
    Discriminator,
    ElectraModel,
    ProjectedEmbedding,
    sample_tokens,
)
from transferlab.train import load_run, read_metrics, train
from transferlab.train.checkpoint import WEIGHTS_FILE, load_train_state

SPECIAL = SpecialTokenIds(pad=0, bos=1, eos=2, mask=3)
VOCAB = 40
MODEL = ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=4, max_seq_len=64)


def _window(batch: int = 4, length: int = 25, seed: int = 0) -> torch.Tensor:
    """Regular tokens with a bos, an eos and (in row 0) right padding."""
    gen = torch.Generator().manual_seed(seed)
    window = torch.randint(4, VOCAB, (batch, length), generator=gen)
    window[:, 0] = SPECIAL.bos
    window[:, 9] = SPECIAL.eos
    window[0, -5:] = SPECIAL.pad
    return window


def _objective(**fields):
    return ElectraConfig(**fields).build(SPECIAL, VOCAB)


def _networks(seed: int = 0, **fields) -> ElectraModel:
    torch.manual_seed(seed)
    return ElectraConfig(**fields).build_networks(MODEL)


# ------------------------------------------------------------------------------ the batch
def test_the_generator_fills_in_exactly_the_drawn_regular_positions():
    window = _window(batch=16, length=65)
    batch = _objective(mask_prob=0.3).make_batch(window, torch.Generator().manual_seed(7))
    tokens = window[:, :-1]
    # The same draws, in the same order: one per position to mask, one per position to sample.
    gen = torch.Generator().manual_seed(7)
    drawn, uniform = (
        torch.rand(tokens.shape, generator=gen),
        torch.rand(tokens.shape, generator=gen),
    )
    regular = tokens >= 4
    assert torch.equal(batch["masked"], (drawn < 0.3) & regular)
    assert torch.equal(batch["uniform"], uniform)
    assert torch.equal(batch["tokens"], tokens)
    assert torch.equal(batch["inputs"], torch.where(batch["masked"], SPECIAL.mask, tokens))
    assert 0.25 < batch["masked"].sum() / regular.sum() < 0.35


def test_every_non_padding_position_is_a_target_and_the_generator_weight_is_global():
    window = _window()
    objective = _objective(mask_prob=1.0)  # every regular token is masked
    batch = objective.make_batch(window, torch.Generator())
    tokens = window[:, :-1]
    assert torch.equal(batch["masked"], tokens >= 4)
    real = int((tokens != SPECIAL.pad).sum())
    assert objective.n_targets(batch) == real == 4 * 24 - 4  # row 0 pads its last 4 inputs
    # positions / masked positions of the whole batch, the same on every row
    expected = real / int((tokens >= 4).sum())
    assert batch["generator_weight"].tolist() == [expected] * 4


def test_sampling_is_the_inverse_cdf_of_the_generators_distribution():
    logits = torch.tensor([[0.1, 0.2, 0.7]]).log()
    uniform = torch.tensor([0.05, 0.15, 0.29, 0.5, 0.99])
    assert sample_tokens(logits.expand(5, 3), uniform).tolist() == [0, 1, 1, 2, 2]
    # Evenly spread draws land on each token in proportion to its probability.
    spread = (torch.arange(1000) + 0.5) / 1000
    counts = torch.bincount(sample_tokens(logits.expand(1000, 3), spread), minlength=3)
    assert counts.tolist() == [100, 200, 700]


# ------------------------------------------------------------------------------ the networks
class _Oracle(torch.nn.Module):
    """A generator whose distribution puts all its mass on ``answer`` [B, L] at every position
    (hidden states are one-hot rows, the head is the identity)."""

    def __init__(self, answer: torch.Tensor) -> None:
        super().__init__()
        self.answer = answer

    def forward(self, inputs, attention, output):
        hidden = 60.0 * F.one_hot(self.answer, VOCAB).float()
        return ModelOutput(hidden, torch.eye(VOCAB))


def test_a_sampled_original_counts_as_original_and_only_masked_positions_change():
    window = _window(seed=3)
    objective = _objective(mask_prob=0.5)
    batch = objective.make_batch(window, torch.Generator().manual_seed(1))
    tokens, masked = batch["tokens"], batch["masked"]
    # The oracle proposes the original at even columns and another regular token at odd ones.
    other = 4 + (tokens - 4 + 1) % (VOCAB - 4)
    odd = (torch.arange(tokens.shape[1]) % 2 == 1).expand_as(tokens)
    answer = torch.where(odd, other, tokens)
    torch.manual_seed(0)
    model = ElectraModel(Discriminator(MODEL), _Oracle(answer))
    out = model(batch["inputs"], tokens, masked, batch["uniform"])
    assert masked.any() and (masked & ~odd).any()
    assert torch.equal(out.replaced, masked & odd)
    assert out.generator_logits.shape == (int(masked.sum()), VOCAB)
    assert out.replaced_logits.shape == tokens.shape


def test_the_loss_is_the_generator_mean_plus_lambda_times_the_discriminator_mean():
    window = _window(seed=4)
    objective = _objective(discriminator_weight=7.0)
    model = _networks()
    batch = objective.make_batch(window, torch.Generator().manual_seed(2))
    tokens, masked = batch["tokens"], batch["masked"]
    loss = objective.loss(model, batch)
    with torch.no_grad():
        out = model(batch["inputs"], tokens, masked, batch["uniform"])
    real = tokens != SPECIAL.pad
    probs = torch.sigmoid(out.replaced_logits[real])
    labels = out.replaced[real].float()
    bce = -(labels * probs.log() + (1 - labels) * (1 - probs).log()).mean()
    mlm = F.cross_entropy(out.generator_logits, tokens[masked])  # mean over masked positions
    assert loss.n_targets == objective.n_targets(batch) == int(real.sum())
    assert math.isclose(
        float(loss.sum.detach()) / loss.n_targets, float(mlm + 7.0 * bce), rel_tol=1e-5
    )
    metrics = {name: float(value) / loss.n_targets for name, value in loss.metrics.items()}
    assert math.isclose(metrics["generator_loss"], float(mlm), rel_tol=1e-5)
    assert math.isclose(metrics["discriminator_loss"], float(bce), rel_tol=1e-5)
    assert metrics["replaced"] == int(labels.sum()) / loss.n_targets
    assert loss.aux == {}


def test_micro_batches_add_up_to_the_global_batch():
    """The generator's weight comes from the whole batch, so row slices of it sum to it."""
    objective, model = _objective(), _networks()
    batch = objective.make_batch(_window(batch=6, seed=5), torch.Generator().manual_seed(3))
    whole = objective.loss(model, batch)
    parts = [
        objective.loss(model, {k: v[rows] for k, v in batch.items()})
        for rows in (
            slice(0, 1),
            slice(1, 6),
        )
    ]
    assert sum(p.n_targets for p in parts) == whole.n_targets
    assert torch.allclose(sum(p.sum for p in parts), whole.sum, rtol=1e-5)


def test_gradients_reach_both_networks_and_never_pass_through_the_samples():
    objective, model = _objective(), _networks()
    batch = objective.make_batch(_window(seed=6), torch.Generator().manual_seed(4))
    out = model(batch["inputs"], batch["tokens"], batch["masked"], batch["uniform"])
    real = batch["tokens"] != SPECIAL.pad
    disc = F.binary_cross_entropy_with_logits(out.replaced_logits[real], out.replaced[real].float())
    disc.backward(retain_graph=True)
    generator_grads = [p.grad for n, p in model.generator.named_parameters()]
    assert all(g is None for g in generator_grads)  # the samples carry no gradient
    assert model.discriminator.rtd_head.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    F.cross_entropy(out.generator_logits, batch["tokens"][batch["masked"]]).backward()
    assert model.discriminator.rtd_head.weight.grad is None
    assert model.discriminator.blocks[0].attn_norm.weight.grad is None
    assert model.generator.blocks[0].mlp_norm.weight.grad.abs().sum() > 0
    assert model.generator.embed.proj.weight.grad.abs().sum() > 0
    # the token embedding is shared: the generator's loss trains the discriminator's embedding
    assert model.discriminator.embed.weight.grad.abs().sum() > 0


def test_the_generator_is_narrower_and_shares_the_embedding_once_in_the_state_dict():
    model = _networks(generator_width_fraction=0.5)
    generator = model.generator
    assert (generator.config.d_model, generator.config.n_heads) == (16, 2)
    assert generator.config.n_layers == MODEL.n_layers
    assert isinstance(generator.embed, ProjectedEmbedding)
    keys = set(model.state_dict())
    assert "discriminator.embed.weight" in keys and "generator.embed.proj.weight" in keys
    assert not any(key.startswith("generator.embed.") and "proj" not in key for key in keys)
    shared = model.discriminator.embed.weight @ generator.embed.proj.weight.T
    assert torch.equal(generator.output_weight, shared)
    own = _networks(share_embeddings=False).generator
    assert isinstance(own.embed, torch.nn.Embedding) and own.embed.weight.shape == (VOCAB, 8)


def test_generator_width_follows_the_fraction_in_whole_heads():
    micro = ModelConfig(preset="micro", d_ff=200)  # 96 wide, 4 heads of 24
    for fraction, (width, heads) in {0.25: (24, 1), 0.5: (48, 2), 0.1: (24, 1)}.items():
        gen = ElectraConfig(generator_width_fraction=fraction).generator_config(micro)
        assert (gen.d_model, gen.n_heads, gen.d_ff) == (width, heads, round(200 * width / 96))


def test_a_generator_the_models_parts_refuse_is_refused_at_validation():
    data = {
        "name": "x",
        "objective": {"name": "electra"},
        "model": {"d_model": 64, "n_heads": 4, "linear": {"name": "low_rank", "rank": 20}},
    }
    with pytest.raises(ConfigError) as error:
        validate(RunConfig, data)
    message = str(error.value)
    assert "objective.generator_width_fraction=0.25 gives a generator the model's parts " in message
    assert "model.linear.rank=20 is not below min(d_model, ffn_dim)=16" in message
    assert "raise the fraction" in message


def test_training_flops_count_the_generator_and_the_replaced_token_head():
    cfg = ElectraConfig(mask_prob=0.2)
    gen = cfg.generator_config(MODEL)  # 16 wide
    head_disc, head_gen = 6 * 32 * VOCAB, 6 * 16 * VOCAB
    discriminator = flops_per_token(MODEL, 24) - head_disc + 6 * 32
    generator = flops_per_token(gen, 24) - 0.8 * head_gen + 6 * 32 * 16  # + input projection
    assert cfg.flops_per_token(MODEL, 24) == round(discriminator + generator)
    assert ElectraConfig(share_embeddings=False).flops_per_token(MODEL, 24) < round(
        discriminator + generator
    )
    assert ClmConfig().flops_per_token(MODEL, 24) == flops_per_token(MODEL, 24)


def test_an_untied_discriminator_head_is_frozen():
    model = ElectraConfig().build_networks(MODEL.model_copy(update={"tie_embeddings": False}))
    assert not model.discriminator.lm_head.weight.requires_grad
    assert model.generator.lm_head.weight.requires_grad


# ------------------------------------------------------------------------------ training
ELECTRA = ("objective=electra", "model.n_heads=4", "trainer.log_interval=2")


def test_electra_trains_and_resumes_bit_for_bit(tiny_config):
    full = train(tiny_config("name=full", *ELECTRA))
    first = train(tiny_config("name=split", *ELECTRA), stop_after=3)
    assert first.interrupted and first.steps == 3
    resumed = train(tiny_config("name=split", *ELECTRA), resume=True)
    assert resumed.steps == full.steps == 8

    def rows(result):
        timing = {"tokens_per_s", "elapsed_s"}
        return [
            {k: v for k, v in r.items() if k not in timing}
            for r in read_metrics(result.run_dir / "metrics.jsonl")
        ]

    assert rows(resumed) == rows(full)
    assert {"generator_loss", "discriminator_loss", "replaced"} <= set(rows(full)[-1])
    weights_a = load_file(str(full.checkpoint / WEIGHTS_FILE))
    weights_b = load_file(str(resumed.checkpoint / WEIGHTS_FILE))
    assert any(key.startswith("generator.") for key in weights_a)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    state_a, state_b = load_train_state(full.checkpoint), load_train_state(resumed.checkpoint)
    moments_a, moments_b = state_a["optimizer"]["state"], state_b["optimizer"]["state"]
    assert len(moments_a) == len(weights_a)  # the generator's parameters are optimized too
    for a, b in zip(moments_a.values(), moments_b.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_tasks_receive_the_discriminator_and_export_refuses_it(tiny_config, monkeypatch, tmp_path):
    received = []

    def spy(task, model, tokenizer, world, run_id, seed, reading, run_dir):
        received.append((model, reading))
        return []

    monkeypatch.setattr(Task, "run", spy)  # what the downstream callback hands a task
    callback = "trainer.callbacks=[{name: downstream, every: 8, tasks: [{name: qa_probe}]}]"
    result = train(tiny_config("name=e", *ELECTRA, callback))
    ((model, reading),) = received
    assert type(model) is Discriminator and reading == "discriminator"
    loaded = load_run(result.run_dir)  # what the executor hands every task
    assert type(loaded.model) is Discriminator
    saved = load_file(str(result.checkpoint / WEIGHTS_FILE))
    state = loaded.model.state_dict()
    prefix = "discriminator."
    assert state.keys() == {k.removeprefix(prefix) for k in saved if k.startswith(prefix)}
    assert all(torch.equal(state[k], saved[prefix + k]) for k in state)
    out = tmp_path / "hf"
    exported = CliRunner().invoke(app, ["export-hf", str(result.run_dir), str(out)])
    assert exported.exit_code != 0
    assert "its model is a replaced-token discriminator (bidirectional, no LM head)" in (
        " ".join(exported.output.split())
    )
    assert not out.exists()


# ------------------------------------------------------------------------------ reading
DISCRIMINATOR_WORDS = "a replaced-token discriminator (features only, no token distribution)"


def test_a_discriminator_is_read_by_its_bidirectional_features_and_nothing_else():
    reader = as_reader("discriminator")
    assert (reader.reading, reader.attention) == ("discriminator", "bidirectional")
    torch.manual_seed(0)
    model = Discriminator(MODEL).eval()
    sequences = [[1, 5, 6, 7], [1, 8, 9, 10]]
    features = reader.features(model, sequences, [0, -1], "mean")
    assert torch.equal(
        features, Reader("bidirectional").features(model, sequences, [0, -1], "mean")
    )
    with pytest.raises(ValueError, match="^a replaced-token discriminator gives no choice scores"):
        reader.score_choices(model, [], SPECIAL)
    with pytest.raises(ValueError, match="^a replaced-token discriminator gives no log-likelih"):
        reader.loglikelihoods(model, [], SPECIAL)
    with pytest.raises(ValueError, match="^a discriminator is read bidirectionally"):
        Reader("causal", discriminator=True)


def test_which_tasks_read_a_discriminator_and_the_refusal_of_the_others():
    readers = {name for name in TASKS.names() if "discriminator" in TASKS.get(name).readings}
    assert {"qa_probe", "text_probe", "code_module", "qa_classify"} <= readers
    assert not readers & {"qa_score", "qa_finetune", "multiple_choice", "text_likelihood"}
    task = TASKS.parse("qa_score")
    expected = (
        f"task 'qa_score' cannot read this model: it is read with {DISCRIMINATOR_WORDS} and "
        f"qa_score {task.reading_limit}; use "
    )
    message = reading_error(task, "discriminator")
    assert message.startswith(expected) and "qa_probe" in message
    with pytest.raises(ValueError, match="^task 'qa_score' cannot read this model"):
        task.build().run(None, None, None, "run", 0, reading="discriminator")


def test_a_run_whose_callback_cannot_read_a_discriminator_is_refused_at_validation(tiny_config):
    callback = "trainer.callbacks=[{name: downstream, tasks: [{name: qa_score}]}]"
    with pytest.raises(ConfigError) as error:
        tiny_config(*ELECTRA, callback)
    assert (
        "downstream callback: task 'qa_score' cannot read this run: its objective 'electra' "
        f"trains {DISCRIMINATOR_WORDS} and qa_score"
    ) in str(error.value)


def test_an_experiment_refuses_a_scoring_task_on_electra_and_probes_its_discriminator(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))

    def spec(tasks):
        base = tiny_base(2)
        base["model"]["n_heads"] = 4
        axes = {"objective": {"electra": {"objective.name": "electra"}}}
        data = {"name": "e", "base": base, "axes": axes, "seeds": [0], "tasks": tasks}
        return ExperimentSpec.model_validate(data)

    with pytest.raises(ConfigError) as error:
        plan_experiment(spec([{"name": "qa_score"}]))
    assert str(error.value).startswith(
        "task 'qa_score' cannot read run variant 'electra': its objective 'electra' trains "
        f"{DISCRIMINATOR_WORDS}"
    )
    calls = []
    real = readers.pooled_hidden

    def spy(model, *args):
        calls.append((type(model), args[-1]))
        return real(model, *args)

    monkeypatch.setattr(readers, "pooled_hidden", spy)
    plan = plan_experiment(spec([{"name": "qa_probe", "max_iter": 5}]))
    executor.execute(plan, log=lambda line: None)
    assert calls and set(calls) == {(Discriminator, "bidirectional")}
    assert plan.evals[0].status() == "done"


def test_a_lipschitz_constraint_applies_to_the_discriminator(tiny_config):
    callback = "trainer.callbacks=[{name: lipschitz, method: spectral_cap, max_norm: 0.1}]"
    result = train(tiny_config("name=lip", *ELECTRA, callback, "trainer.max_steps=3"))
    weights = load_file(str(result.checkpoint / WEIGHTS_FILE))

    def largest_norm(network):
        matrices = [w for k, w in weights.items() if k.startswith(f"{network}.blocks.")]
        return max(float(torch.linalg.matrix_norm(w, ord=2)) for w in matrices if w.ndim == 2)

    assert largest_norm("discriminator") <= 0.1 + 1e-4
    assert largest_norm("generator") > 0.15  # the generator is left as it trains


def test_qa_classify_fine_tunes_the_discriminator_read_bidirectionally(monkeypatch, tmp_path):
    """Fine-tuning reads electra as probes do: the discriminator's features, bidirectionally."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "store"))
    base = tiny_base(2)
    base["model"]["n_heads"] = 4
    axes = {"objective": {"electra": {"objective.name": "electra"}}}
    task = {"name": "qa_classify", "epochs": 1, "attributes": ["major"]}
    data = {"name": "e", "base": base, "axes": axes, "seeds": [0], "tasks": [task]}
    calls = []
    real = readers.Reader.feature_forward

    def spy(self, model, inputs, lengths):
        calls.append((any(isinstance(m, Discriminator) for m in model.modules()), self.reading))
        return real(self, model, inputs, lengths)

    monkeypatch.setattr(readers.Reader, "feature_forward", spy)
    plan = plan_experiment(ExperimentSpec.model_validate(data))
    executor.execute(plan, log=lambda line: None)
    assert calls and set(calls) == {(True, "discriminator")}
    assert plan.evals[0].status() == "done"
