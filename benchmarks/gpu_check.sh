#!/usr/bin/env bash
# Speed check for a GPU machine, in under 8 minutes: step figures (fp32, bf16, XLA), supernet
# trace and compile time, generation and reward throughput, a mock CIFAR-10-shaped search and a
# projection of the paper's search; one JSON object on stdout (see benchmarks/gpu_check.py).
# With benchmarks/gpu_mirrored.sh present, its data-parallel check runs too ("mirrored").
#   bash benchmarks/gpu_check.sh [--tiny] [gpu_check.py flags...]     (--tiny: runs on a CPU)
# Env: PYTHON (default: the repository's .venv, else python3).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3
cd "$REPO"
exec "$PY" "$HERE/gpu_check.py" --mirrored_script="$HERE/gpu_mirrored.sh" "$@"
