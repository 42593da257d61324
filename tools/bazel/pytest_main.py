"""Runs one test file under pytest, as the main program of a Bazel ``py_test``.

Usage (from the ``args`` of the test rule): ``pytest_main.py tests/test_x.py [pytest options]``.
Writes the JUnit XML Bazel asks for, maps ``--test_filter`` to ``-k`` and keeps pytest's cache
out of the read-only runfiles tree.
"""

import os
import sys

import pytest


def main(argv):
    args = list(argv) + ["-p", "no:cacheprovider"]
    xml_output = os.environ.get("XML_OUTPUT_FILE")
    if xml_output:
        args.append("--junitxml=" + xml_output)
    test_filter = os.environ.get("TESTBRIDGE_TEST_ONLY")
    if test_filter:
        args += ["-k", test_filter]
    return pytest.main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
