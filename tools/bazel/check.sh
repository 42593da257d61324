#!/bin/sh
# Checks the Bazel setup: BUILD files formatted and lint-clean, BUILD in step with the
# imports, the target graph loads, and one small test passes. Run from anywhere; uses the
# active virtual environment (or $AUTOGAN_PYTHON) as Bazel's Python.
#
#   tools/bazel/check.sh [test target ...]     # default: //:test_search_space
set -eu
cd "$(dirname "$0")/../.."

if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${AUTOGAN_PYTHON:-}" ]; then
    echo "note: no virtual environment active and AUTOGAN_PYTHON unset;" \
        "Bazel uses python3 from PATH" >&2
fi

BUILDIFIER=${BUILDIFIER:-$(command -v buildifier || echo /tmp/bldf/node_modules/.bin/buildifier)}
if [ ! -x "$BUILDIFIER" ]; then
    echo "buildifier not found: npm install --prefix /tmp/bldf @bazel/buildifier," \
        "or set BUILDIFIER" >&2
    exit 1
fi

echo "== buildifier"
"$BUILDIFIER" --mode=check --lint=warn BUILD WORKSPACE tools/bazel/BUILD tools/bazel/defs.bzl
"$BUILDIFIER" --mode=check --lint=warn --warnings=-native-sh-binary -r tools/bazel/stubs

echo "== BUILD against imports"
python3 tools/bazel/check_deps.py

echo "== bazel query //..."
bazel query //... >/dev/null

echo "== bazel build //:all"
bazel build //:all

echo "== bazel test"
if [ "$#" -eq 0 ]; then
    set -- //:test_search_space
fi
bazel test "$@"
