"""Checks that Bazel's targets match the code and that the code keeps its layers.

First the layering rule (``layering.py``: no module imports from a higher layer), without
Bazel. Then, from ``bazel query``: every module under autogan_tf/ (``__init__.py`` and
``__main__.py`` included) has a ``py_library`` in its package's BUILD whose sources are that
file and whose deps are exactly the autogan_tf modules it imports plus its package's
``package_init``; every entry point has its ``<name>_bin``; ``//autogan_tf`` holds every
module; every ``tests/test_*.py`` has a ``py_test`` of the same name whose deps cover its
imports, tagged ``slow`` exactly when it holds slow tests; and no target is left for a file
that is gone. Run from anywhere (Bazel must be on PATH)::

    python3 tools/bazel/check_deps.py               # layering and targets
    python3 tools/bazel/check_deps.py --no-bazel    # layering only

Prints one line per problem and a summary; exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import gen_build
import layering

__all__ = ["bazel_errors", "main"]

_QUERY = 'kind("py_library|py_binary|py_test", //autogan_tf/... + //tests/...)'


def _full(label):
    """``//a/b`` -> ``//a/b:b``; other labels unchanged."""
    if ":" in label:
        return label
    return f"{label}:{label.rsplit('/', 1)[-1]}"


def _query(root):
    """Rules of autogan_tf/ and tests/: label -> (class, {attr: set of labels/strings})."""
    out = subprocess.run(["bazel", "query", "--output=xml", _QUERY], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    rules = {}
    for rule in ET.fromstring(out).iter("rule"):
        attrs = {}
        for lst in rule.findall("list"):
            attrs[lst.get("name")] = {item.get("value") for item in lst}
        rules[rule.get("name")] = (rule.get("class"), attrs)
    return rules


def _file_label(path):
    directory, name = path.rsplit("/", 1)
    return f"//{directory}:{name}"


def bazel_errors(root, modules, tests, rules):
    """Mismatches between the module graph and Bazel's rules.

    Args:
        root: the repository root.
        modules: `layering.scan` of the tree.
        tests: `layering.scan_tests` of the tree.
        rules: label -> (rule class, {list attribute: set of values}), as `bazel query` gives.

    Returns:
        A list of messages, each naming the target and what to change.
    """
    errors = []
    fix = "run python3 tools/bazel/gen_build.py"
    libraries = {}
    for module in modules.values():
        label = _full(gen_build.label(module))
        libraries[label] = module
        kind, attrs = rules.get(label, (None, {}))
        if kind != "py_library":
            errors.append(f"{label}: no py_library for {module.path}; {fix}")
            continue
        if attrs.get("srcs", set()) != {_file_label(module.path)}:
            errors.append(f"{label}: srcs {sorted(attrs.get('srcs', ()))}, want {module.path}")
        want = {_full(gen_build.label(m)) for m in gen_build.library_deps(module, modules)}
        have = attrs.get("deps", set())
        if have != want:
            diff = [f"{what} {sorted(labels)}" for what, labels in
                    (("lack", want - have), ("have extra", have - want)) if labels]
            errors.append(f"{label}: deps {' and '.join(diff)} (the imports say so); {fix}")
        if module.entry_point:
            binary = f"//{gen_build.directory(module)}:{gen_build.binary_name(module)}"
            kind, attrs = rules.get(binary, (None, {}))
            if kind != "py_binary" or label not in attrs.get("deps", set()):
                errors.append(f"{binary}: no py_binary depending on {label} for the entry "
                              f"point {module.path}; {fix}")
    whole = _full("//" + layering.PACKAGE)
    missing = set(libraries) - rules.get(whole, (None, {}))[1].get("deps", set())
    if missing:
        errors.append(f"{whole}: lacks {sorted(missing)}; {fix}")
    for label, (kind, attrs) in sorted(rules.items()):
        if kind == "py_library" and label.startswith("//autogan_tf") and label != whole:
            if label not in libraries:
                errors.append(f"{label}: no module {sorted(attrs.get('srcs', ()))} any more; "
                              f"{fix}")
    for test in tests.values():
        label = f"//tests:{test.name}"
        kind, attrs = rules.get(label, (None, {}))
        if kind != "py_test":
            errors.append(f"{label}: no py_test for {test.path}; {fix}")
            continue
        want = {_full(gen_build.label(modules[name])) for name in test.imports}
        lack = want - attrs.get("deps", set())
        if lack:
            errors.append(f"{label}: deps lack {sorted(lack)}; {fix}")
        if test.slow != ("slow" in attrs.get("tags", set())):
            errors.append(f"{label}: tag 'slow' must be {'set' if test.slow else 'absent'} "
                          f"({test.path} {'has' if test.slow else 'has no'} slow tests); {fix}")
    for label, (kind, _) in sorted(rules.items()):
        if kind == "py_test" and label.startswith("//tests:"):
            if label.split(":", 1)[1] not in tests:
                errors.append(f"{label}: no tests/{label.split(':', 1)[1]}.py any more; {fix}")
    return errors


def main(argv=None):
    """Runs the checks on the repository holding this script; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--no-bazel", action="store_true",
                        help="check the layering only, without running bazel query")
    args = parser.parse_args(argv)
    root = pathlib.Path(__file__).resolve().parents[2]
    modules = layering.scan(root)
    errors = layering.layering_errors(modules)
    if not args.no_bazel:
        tests = layering.scan_tests(root, modules)
        errors += bazel_errors(root, modules, tests, _query(root))
    for error in errors:
        print(error, file=sys.stderr)
    print(f"check_deps: {len(modules)} modules, {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
