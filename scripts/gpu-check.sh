#!/usr/bin/env bash
# On a CUDA machine: build the CUDA kernels, run tests/gpu/, run the GPU benchmark (under 8 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
YOSO=${YOSO:-.venv/bin/yoso}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}

"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu-check: no CUDA device visible to torch")'

echo "== build (CPU + CUDA for the visible GPU)" >&2
timeout 300 "$YOSO" build-kernels --cuda

echo "== tests/gpu" >&2
timeout 180 "$PY" -m pytest -q tests/gpu -m gpu

echo "== GPU benchmark" >&2
timeout 240 "$YOSO" bench --device cuda --seq-len 4096 16384 --backward --time-budget 60
