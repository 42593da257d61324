"""Checks that the top-level BUILD matches the code.

Every autogan_tf/*.py module needs a py_library named after it whose deps are exactly the
autogan_tf modules it imports (plus :package_init), every tests/test_*.py a test target of the
same name whose deps cover its autogan_tf imports, and every module with a
``if __name__ == "__main__":`` block a ``<module>_bin`` target. Run from the repository root:
``python3 tools/bazel/check_deps.py`` (it calls ``bazel query``). Exits 1 on a mismatch.
"""

import ast
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET


def _imports(path, modules):
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "autogan_tf":
                names = ["autogan_tf." + alias.name for alias in node.names]
            else:
                names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "autogan_tf" and len(parts) > 1 and parts[1] in modules:
                found.add(parts[1])
    return found - {path.stem}


def _targets():
    out = subprocess.run(
        ["bazel", "query", "--output=xml", "//:*"], check=True, capture_output=True, text=True
    ).stdout
    targets = {}
    for rule in ET.fromstring(out).iter("rule"):
        name = rule.get("name").split(":", 1)[1]
        deps = set()
        for lst in rule.iter("list"):
            if lst.get("name") == "deps":
                deps = {label.get("value").split(":", 1)[1] for label in lst.iter("label")}
        targets[name] = (rule.get("class"), deps)
    return targets


def main():
    root = pathlib.Path.cwd()
    modules = {p.stem for p in (root / "autogan_tf").glob("*.py")} - {"__init__"}
    targets = _targets()
    errors = []
    for module in sorted(modules):
        path = root / "autogan_tf" / (module + ".py")
        want = _imports(path, modules) | {"package_init"}
        kind, deps = targets.get(module, (None, set()))
        if kind != "py_library":
            errors.append(f"//:{module}: missing py_library for {path.relative_to(root)}")
        elif deps != want:
            errors.append(f"//:{module}: deps {sorted(deps)}, imports say {sorted(want)}")
        if '__name__ == "__main__"' in path.read_text() and module + "_bin" not in targets:
            errors.append(f"//:{module}_bin: missing py_module_binary for the entry point")
    for path in sorted((root / "tests").glob("test_*.py")):
        want = _imports(path, modules)
        kind, deps = targets.get(path.stem, (None, set()))
        if kind != "py_test":
            errors.append(f"//:{path.stem}: missing pytest_test for {path.relative_to(root)}")
        elif not want <= deps:
            errors.append(f"//:{path.stem}: deps lack {sorted(want - deps)}")
    for error in errors:
        print(error, file=sys.stderr)
    print(f"check_deps: {len(modules)} modules, {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
