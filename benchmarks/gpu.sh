#!/usr/bin/env bash
# On a machine with a CUDA GPU: the CUDA tests, then bf16 tokens/s and MFU of the ~125M preset
# (benchmarks/gpu.py; its options pass through). Without a GPU it says so and exits 0.
# PYTHON picks the interpreter (default: the repository's .venv, else python on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" benchmarks/gpu.py "$@"
