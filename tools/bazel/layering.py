"""The module graph of autogan_tf and its layering rule, read from the source alone.

Finds every module under ``autogan_tf/`` (package ``__init__.py`` and ``__main__.py`` files
included), the autogan_tf modules each one imports, its layer, and whether it is an entry
point; and checks that no module imports from a higher layer. ``gen_build.py`` writes the
BUILD files from this graph, ``check_deps.py`` compares Bazel's targets with it, and
``tests/test_layering.py`` runs the layering check without Bazel. Standard library only.

The layers, lowest first (``LAYERS``): the base modules ``autogan_tf/*.py``, then the
sub-packages ``nn``, ``eval``, ``training``, ``serving`` and ``search`` (one layer; neither
imports the other), ``experiments``, ``cli``, and last the binaries: ``autogan_tf/<name>.py``
with an ``if __name__ == "__main__":`` block and any ``__main__.py``. A module may import
modules of its own group and of lower layers only.

Run as a script from anywhere, it prints the layering problems and exits 1 if there are any::

    python3 tools/bazel/layering.py
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import sys
import textwrap

__all__ = [
    "BASE",
    "BINARIES",
    "LAYERS",
    "PACKAGE",
    "Module",
    "TestFile",
    "group_rank",
    "layering_errors",
    "file_imports",
    "may_import",
    "scan",
    "scan_tests",
]

PACKAGE = "autogan_tf"
BASE = "base"
BINARIES = "binaries"

# Lowest first. A group may import its own modules and those of lower layers; groups that
# share a layer are independent of each other.
LAYERS = (
    (BASE,),
    ("nn",),
    ("eval",),
    ("training",),
    ("serving", "search"),
    ("experiments",),
    ("cli",),
    (BINARIES,),
)

_RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}


@dataclasses.dataclass(frozen=True)
class Module:
    """One Python file of the package.

    Attributes:
        name: dotted name; a package's ``__init__.py`` has the package's name
            (``autogan_tf.nn``), a ``__main__.py`` ends in ``.__main__``.
        path: the file, relative to the repository root, with ``/`` separators.
        package: dotted name of the package the file is in.
        group: ``base``, a sub-package of ``autogan_tf`` (``nn``, ``search``, ...) or
            ``binaries``; ``None`` for a sub-package that ``LAYERS`` does not list.
        is_init: the file is a package's ``__init__.py``.
        entry_point: ``python -m`` runs it: a ``__main__.py`` or a module with an
            ``if __name__ == "__main__":`` block.
        imports: dotted names of the autogan_tf modules it imports (itself excluded).
    """

    name: str
    path: str
    package: str
    group: str | None
    is_init: bool
    entry_point: bool
    imports: frozenset


@dataclasses.dataclass(frozen=True)
class TestFile:
    """One ``tests/test_*.py`` file.

    Attributes:
        name: the file's stem (``test_models``).
        path: the file, relative to the repository root.
        imports: autogan_tf modules it imports, those imported by Python source it holds in
            strings (scripts run in subprocesses) and those named whole in a string
            (``-m autogan_tf.export``; a package there means its ``__main__``).
        slow: it holds tests marked ``@pytest.mark.slow``.
        uses_fixtures: it mentions the ``tests/fixtures`` directory.
    """

    name: str
    path: str
    imports: frozenset
    slow: bool
    uses_fixtures: bool


def group_rank(group):
    """The layer of a group (0 for ``base``), or ``None`` if ``LAYERS`` does not list it."""
    return _RANK.get(group)


def may_import(importer, imported):
    """Whether the layering lets ``importer`` import ``imported`` (two `Module`s)."""
    if importer.group == imported.group:
        return True
    low, high = group_rank(imported.group), group_rank(importer.group)
    return low is not None and high is not None and low < high


def _layers_text():
    return " < ".join(", ".join(groups) for groups in LAYERS)


def _is_main_guard(node):
    """``if __name__ == "__main__":`` (either operand order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    operands = [test.left, test.comparators[0]]
    names = [o.id for o in operands if isinstance(o, ast.Name)]
    consts = [o.value for o in operands if isinstance(o, ast.Constant)]
    return names == ["__name__"] and consts == ["__main__"]


def _resolve(name, modules):
    """The longest prefix of dotted ``name`` that is a module, or ``None``."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports_of(tree, package, modules):
    """autogan_tf modules imported anywhere in ``tree`` (function bodies included)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(_resolve(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else _resolve(source, modules))
    found.discard(None)
    return found


def _python_files(root):
    pkg_dir = root / PACKAGE
    for path in sorted(pkg_dir.rglob("*.py")):
        rel = path.relative_to(root)
        if "__pycache__" not in rel.parts:
            yield rel


def _group_of(rel, entry_point):
    """The layer group of a file at ``rel`` (relative to the repository root)."""
    parts = rel.parts[1:]  # below autogan_tf/
    if rel.name == "__main__.py":
        return BINARIES
    if len(parts) == 1:
        if rel.name == "__init__.py" or not entry_point:
            return BASE
        return BINARIES
    return parts[0] if parts[0] in _RANK else None


def scan(root):
    """Reads every module under ``<root>/autogan_tf``.

    Args:
        root: the repository root (a path).

    Returns:
        A dict from dotted module name to `Module`, sorted by name.

    Raises:
        SyntaxError: a module does not parse.
    """
    root = pathlib.Path(root)
    files = {}
    for rel in _python_files(root):
        dotted = list(rel.with_suffix("").parts)
        is_init = dotted[-1] == "__init__"
        if is_init:
            dotted.pop()
        files[".".join(dotted)] = (rel, is_init)
    modules = {}
    for name, (rel, is_init) in sorted(files.items()):
        tree = ast.parse((root / rel).read_text(), filename=str(rel))
        package = ".".join(rel.parent.parts)
        entry_point = rel.name == "__main__.py" or any(_is_main_guard(n) for n in tree.body)
        imports = _imports_of(tree, package, files) - {name}
        modules[name] = Module(
            name=name,
            path=rel.as_posix(),
            package=package,
            group=_group_of(rel, entry_point),
            is_init=is_init,
            entry_point=entry_point,
            imports=frozenset(imports),
        )
    return modules


def _string_imports(tree, modules):
    """Modules reached through string constants: embedded scripts and ``-m`` module names."""
    found = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        text = node.value
        if text in modules:
            main = text + ".__main__"
            found.add(main if main in modules else text)
        elif "autogan_tf" in text and "import" in text:
            try:
                inner = ast.parse(textwrap.dedent(text))
            except SyntaxError:
                continue
            found |= _imports_of(inner, "", modules)
            found |= _string_imports(inner, modules)
    return found


def file_imports(path, modules, package="tests"):
    """autogan_tf modules a file outside the package imports (e.g. tests/conftest.py).

    Args:
        path: the file.
        modules: the result of `scan`.
        package: dotted package of the file, for relative imports.

    Returns:
        A set of dotted module names, string-held scripts and ``-m`` names included.
    """
    tree = ast.parse(pathlib.Path(path).read_text(), filename=str(path))
    return _imports_of(tree, package, modules) | _string_imports(tree, modules)


def _marks_slow(tree):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "slow"
                and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"):
            return True
    return False


def scan_tests(root, modules):
    """Reads every ``<root>/tests/test_*.py`` file.

    Args:
        root: the repository root (a path).
        modules: the result of `scan`.

    Returns:
        A dict from file stem to `TestFile`, sorted by name.
    """
    root = pathlib.Path(root)
    tests = {}
    for path in sorted((root / "tests").glob("test_*.py")):
        rel = path.relative_to(root)
        source = path.read_text()
        tree = ast.parse(source, filename=str(rel))
        tests[path.stem] = TestFile(
            name=path.stem,
            path=rel.as_posix(),
            imports=frozenset(file_imports(path, modules)),
            slow=_marks_slow(tree),
            uses_fixtures="fixtures" in source,
        )
    return tests


def layering_errors(modules):
    """The layering problems of a module graph, one line each (empty if none).

    Args:
        modules: the result of `scan`.

    Returns:
        A sorted list of messages naming the file, the import and the fix.
    """
    errors = set()
    for module in modules.values():
        if module.group is None:
            sub = module.name.split(".")[1]
            errors.add(
                f"{PACKAGE}/{sub}: package {PACKAGE}.{sub} has no layer; add it to LAYERS in "
                f"tools/bazel/layering.py (now {_layers_text()})")
            continue
        for name in sorted(module.imports):
            imported = modules[name]
            if imported.group is None or may_import(module, imported):
                continue
            if group_rank(imported.group) == group_rank(module.group):
                why = f"{module.group} and {imported.group} share a layer and stay independent"
            else:
                why = f"{module.group} is below {imported.group}"
            errors.add(
                f"{module.path} imports {name}: {why} ({_layers_text()}); move the shared "
                f"code down to a layer both may import, or the importing code up")
    return sorted(errors)


def main(argv):
    """Prints the layering problems of the repository holding this file; 1 if any."""
    del argv
    root = pathlib.Path(__file__).resolve().parents[2]
    modules = scan(root)
    errors = layering_errors(modules)
    for error in errors:
        print(error, file=sys.stderr)
    print(f"layering: {len(modules)} modules, {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
