#!/usr/bin/env bash
# Creates .venv and installs transferlab into it.
#   scripts/install.sh         runtime only
#   scripts/install.sh --dev   plus the test tools (pytest, ruff)
# torch: where no NVIDIA GPU is present we pin the CPU build (torch==2.13.0) before installing
# the package, so pip never pulls a multi-GB CUDA build onto a laptop. With a GPU, pip resolves
# torch normally (a CUDA build), or keeps the one already in the environment.
# Override with TORCH_SPEC, e.g. TORCH_SPEC="torch==2.5.1" scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip's exit status is kept; only its warnings about unusable local index entries are dropped.
pip_install() {
  .venv/bin/python -m pip --disable-pip-version-check -q install "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_SPEC:-}" ]; then
    pip_install "$TORCH_SPEC"
  elif ! command -v nvidia-smi >/dev/null 2>&1; then
    pip_install "torch==2.13.0"
  fi
fi
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
pip_install -e ".${extra}"
.venv/bin/python -c "import transferlab, torch; print(f'transferlab ready (torch {torch.__version__})')"
