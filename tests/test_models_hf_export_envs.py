"""The Hugging Face export loads in environments other than ours: a fresh virtual environment
with the latest transformers 4.x (nothing shared with this one) and the installed transformers
5.x, each in its own process, reproducing our logits and our <bos>-first tokenization.

The transformers 4 environment is built once (pip, from the package registry) in
``$TRANSFERLAB_TEST_ENVS`` (default ``~/.cache/transferlab/test-envs``) and reused; a folder
without the ``COMPLETE`` marker is a build that did not finish and is built again. Without
network the test skips, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from safetensors.torch import load_file

import test_models_hf_export as base

pytestmark = pytest.mark.slow
tokenizer_file = base.tokenizer_file  # the same fixture
pytest.importorskip("transformers")
from transferlab.models.hf_export import export_llama  # noqa: E402

TORCH_SPEC = f"torch=={torch.__version__.split('+')[0]}"
ENV_PACKAGES = ("transformers<5", TORCH_SPEC, "safetensors", "tokenizers", "lm-eval[hf]")

# Run inside the other environment: argv = export dir, ids (JSON), text, output file.
LOADER = """
import json, sys
import torch, transformers
from safetensors.torch import save_file
out, ids, text, dest = sys.argv[1], torch.tensor(json.loads(sys.argv[2])), sys.argv[3], sys.argv[4]
tok = transformers.AutoTokenizer.from_pretrained(out)
logits = {}
with torch.no_grad():
    for impl in ("eager", "sdpa"):
        model = transformers.AutoModelForCausalLM.from_pretrained(
            out, torch_dtype=torch.float32, attn_implementation=impl
        )
        logits[impl] = model(ids).logits.contiguous()
save_file(logits, dest)
print(json.dumps({
    "version": transformers.__version__,
    "architecture": type(model).__name__,
    "rope_theta": model.config.to_dict().get("rope_theta")
    or model.config.to_dict()["rope_parameters"]["rope_theta"],
    "ids": tok(text)["input_ids"],
    "bos_token_id": tok.bos_token_id,
}))
"""


def envs_root() -> Path:
    return Path(
        os.environ.get("TRANSFERLAB_TEST_ENVS", Path.home() / ".cache/transferlab/test-envs")
    )


def transformers4_python() -> Path:
    """The python of a cached venv with transformers 4.x; skips when it cannot be installed."""
    env = envs_root() / "transformers4"
    python = env / "bin" / "python"
    env.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env) + ".lock"):  # two test sessions never build it at once
        marker = env / "COMPLETE"
        if marker.is_file() and marker.read_text() == " ".join(ENV_PACKAGES) + "\n":
            return python
        if env.exists():  # half-built or for other packages: ours, by its marker
            shutil.rmtree(env)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        result = subprocess.run([*pip, *ENV_PACKAGES], capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"cannot install {' '.join(ENV_PACKAGES)} (no network?): {last}")
        marker.write_text(" ".join(ENV_PACKAGES) + "\n")
    return python


def installed_python() -> Path:
    return Path(sys.executable)


@pytest.mark.parametrize(
    ("python", "major"), [(transformers4_python, "4"), (installed_python, "5")], ids=["4.x", "5.x"]
)
@pytest.mark.parametrize("fields", [{}, {"qk_norm": True}], ids=["llama", "qwen3"])
def test_export_loads_in_another_environment(tmp_path, tokenizer_file, python, major, fields):
    import transformers

    if major == "5" and not transformers.__version__.startswith("5"):
        pytest.skip(f"installed transformers is {transformers.__version__}, not 5.x")
    model = base.make_model(**fields)
    out = export_llama(model, tokenizer_file, tmp_path / "hf")
    ids = torch.randint(
        0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(3)
    )
    text = "the cat sat on a mat ."
    # a clean environment: no PYTHONPATH pointing at our sources, no shared cache
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HF_HUB_OFFLINE"] = "1"
    args = [
        str(python()),
        "-c",
        LOADER,
        str(out),
        json.dumps(ids.tolist()),
        text,
        str(tmp_path / "l.st"),
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["version"].split(".")[0] == major
    assert info["architecture"] == ("Qwen3ForCausalLM" if fields else "LlamaForCausalLM")
    assert info["rope_theta"] == model.config.rope_theta
    bos = base.WORDS.index("<bos>")
    assert info["bos_token_id"] == bos
    assert info["ids"] == [bos, *(base.WORDS.index(w) for w in text.split())]
    with torch.no_grad():
        ours = model(ids)
    for impl, theirs in load_file(tmp_path / "l.st").items():
        assert (theirs - ours).abs().max().item() <= 1e-4, impl


# lm-evaluation-harness with its default settings (the tokenizer's own <bos> handling).
LM_EVAL = """
import json, sys
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
lm = HFLM(pretrained=sys.argv[1], device="cpu", dtype="float32", batch_size=2)
context, choices = sys.argv[2], json.loads(sys.argv[3])
requests = [Instance("loglikelihood", {}, (context, c), i) for i, c in enumerate(choices)]
print(json.dumps([score for score, _ in lm.loglikelihood(requests)]))
"""


def test_lm_eval_scores_equal_ours(tmp_path, tokenizer_file):
    from transferlab.data.tokenizer import TextTokenizer
    from transferlab.evaluate.score import score_choices

    python = transformers4_python()
    model = base.make_model()
    out = export_llama(model, tokenizer_file, tmp_path / "hf")
    tok = TextTokenizer.from_file(tokenizer_file)
    context, choices = "the cat sat on", [" a mat", " the cat .", " mat"]
    request = ([tok.special.bos, *tok.encode(context)], [tok.encode(c) for c in choices])
    ours = score_choices(model, [request])[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HF_HUB_OFFLINE"] = "1"
    args = [str(python), "-c", LM_EVAL, str(out), context, json.dumps(choices)]
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    assert theirs == pytest.approx(ours, abs=1e-4)
