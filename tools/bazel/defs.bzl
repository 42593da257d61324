"""Macros for the BUILD files that tools/bazel/gen_build.py writes.

`pytest_test`: a `py_test` that runs one tests/test_*.py file under pytest.
`py_module_binary`: a `py_binary` that runs a module as `python -m <module>` does.
"""

load("@rules_python//python:defs.bzl", "py_binary", "py_test")

def pytest_test(name, src = None, deps = [], data = [], **kwargs):
    """Declares a `py_test` running `src` (default <name>.py in this package) through pytest.

    The test file and the runner //tools/bazel:pytest_main.py form the sources, and
    //:pytest.ini (markers, warning filters) comes along as data; shared fixtures come from
    a `conftest` py_library in `deps`. pytest comes from the Python interpreter Bazel runs
    (see tools/bazel/python3.sh).

    Args:
      name: target name, usually the file's stem (test_search_space).
      src: the test file in this package; defaults to <name>.py.
      deps: the py_library targets the test imports.
      data: files the test reads.
      **kwargs: other py_test attributes (size, timeout, tags, ...).
    """
    src = src or "%s.py" % name
    py_test(
        name = name,
        srcs = [
            src,
            "//tools/bazel:pytest_main.py",
        ],
        main = "//tools/bazel:pytest_main.py",
        args = ["%s/%s" % (native.package_name(), src)] + kwargs.pop("args", []),
        data = ["//:pytest.ini"] + data,
        python_version = "PY3",
        deps = deps,
        **kwargs
    )

def py_module_binary(name, module, deps = [], **kwargs):
    """Declares a `py_binary` that runs `module` as `python -m module` would.

    A generated main file calls `runpy.run_module`, so the module runs as
    `__main__` with the repository root (not the module's directory) first on
    `sys.path`, the same as `python -m autogan_tf.<name>` from a checkout.

    Args:
      name: target name, e.g. evaluate_bin.
      module: dotted module name, e.g. autogan_tf.evaluate.
      deps: the py_library holding the module (and anything else it needs).
      **kwargs: other py_binary attributes (data, args, ...).
    """
    main = "_%s_main.py" % name
    native.genrule(
        name = name + "_main",
        outs = [main],
        cmd = "echo 'import runpy; runpy.run_module(\"%s\", run_name=\"__main__\", alter_sys=True)' > $@" % module,
    )
    py_binary(
        name = name,
        srcs = [main],
        main = main,
        python_version = "PY3",
        deps = deps,
        **kwargs
    )
