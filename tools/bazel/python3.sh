#!/bin/sh
# Python interpreter for Bazel's Python rules: $AUTOGAN_PYTHON if set, else the active
# virtual environment ($VIRTUAL_ENV), else the workspace's .venv/ (the README's install),
# else the first python3 on PATH. Third-party packages (TensorFlow, Keras, pytest, ...) come
# from that interpreter, not from Bazel.
if [ -n "${AUTOGAN_PYTHON:-}" ]; then
    exec "$AUTOGAN_PYTHON" "$@"
fi
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python3" ]; then
    exec "$VIRTUAL_ENV/bin/python3" "$@"
fi
# This file in the runfiles links back to tools/bazel/python3.sh in the workspace.
workspace=$(dirname "$(dirname "$(dirname "$(readlink -f "$0")")")")
if [ -x "$workspace/.venv/bin/python3" ]; then
    exec "$workspace/.venv/bin/python3" "$@"
fi
exec python3 "$@"
