#!/usr/bin/env bash
# Data-parallel check: a short train and search under --strategy=mirrored (all GPUs; on a CPU
# host 2 logical CPU devices at tiny sizes) against one-device runs of the same global batches.
# One JSON line per check: replicas, seconds per iteration, speedup, whether the losses matched
# (see benchmarks/gpu_mirrored.py). Under two minutes on a 2-core CPU.
#   bash benchmarks/gpu_mirrored.sh [--tiny] [gpu_mirrored.py flags...]
# Env: PYTHON (default: the repository's .venv, else python3); GPU_CHECK_TINY=1 means --tiny.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3
cd "$REPO"
exec "$PY" "$HERE/gpu_mirrored.py" "$@"
