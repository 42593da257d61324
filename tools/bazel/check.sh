#!/bin/sh
# Checks the Bazel setup: BUILD files formatted and lint-clean, BUILD files as
# tools/bazel/gen_build.py writes them, the layering and the targets in step with the imports
# (tools/bazel/check_deps.py), the target graph loads and builds, and one small test passes.
# Run from anywhere. Bazel's Python is $AUTOGAN_PYTHON, else the active virtual environment,
# else the checkout's .venv/ (the README's install), else python3 on PATH.
#
#   tools/bazel/check.sh [test target ...]     # default: //tests:test_search_space
set -eu
cd "$(dirname "$0")/../.."

if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${AUTOGAN_PYTHON:-}" ]; then
    if [ -x .venv/bin/python3 ]; then
        echo "note: no virtual environment active; Bazel uses .venv/bin/python3" >&2
    else
        echo "note: no virtual environment active, AUTOGAN_PYTHON unset and no .venv/;" \
            "Bazel uses python3 from PATH" >&2
    fi
fi

BUILDIFIER=${BUILDIFIER:-$(command -v buildifier || echo /tmp/bldf/node_modules/.bin/buildifier)}
if [ ! -x "$BUILDIFIER" ]; then
    echo "buildifier not found: npm install --prefix /tmp/bldf @bazel/buildifier," \
        "or set BUILDIFIER" >&2
    exit 1
fi

echo "== buildifier"
"$BUILDIFIER" --mode=check --lint=warn BUILD WORKSPACE tools/bazel/BUILD tools/bazel/defs.bzl \
    $(find autogan_tf tests -name BUILD | sort)
"$BUILDIFIER" --mode=check --lint=warn --warnings=-native-sh-binary -r tools/bazel/stubs

echo "== BUILD files as gen_build.py writes them"
python3 tools/bazel/gen_build.py --check

echo "== layering, and targets against imports"
python3 tools/bazel/check_deps.py

echo "== bazel query //..."
bazel query //... >/dev/null

echo "== bazel build //..."
bazel build //...

echo "== bazel test"
if [ "$#" -eq 0 ]; then
    set -- //tests:test_search_space
fi
bazel test "$@"
